//! Markup that escapes by construction.
//!
//! [`Html`] is the only thing the page is written into, and it takes only:
//!
//! - text, escaped on the way in ([`Html::text`], [`Html::push_text`]): every string that
//!   came from a bundle, a trust policy or an officer goes this way;
//! - markup the program itself spells out, as `&'static str` literals
//!   ([`Html::raw_static`], [`Html::push_static`], or a literal [`Piece`]): a string read at
//!   run time is never `'static`, so nothing from a bundle can be passed as markup;
//! - numbers the program formats ([`Piece`] for integers, `bool`, `f64` and [`Fixed`]),
//!   whose text is only digits, signs, `.`, `e`, `NaN` or `inf`;
//! - other [`Html`], built the same way.
//!
//! [`Piece`] is sealed: no other crate can teach [`Html`] to take something else raw.

use std::fmt::Write as _;

/// HTML markup under construction (see the module documentation for the ways in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Html(String);

impl Html {
    /// Empty markup.
    pub fn new() -> Self {
        Self(String::new())
    }

    /// Empty markup with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self(String::with_capacity(capacity))
    }

    /// `s` as text: `&`, `<`, `>`, `"` and `'` are escaped, so the result is safe both
    /// between tags and inside a `"..."` attribute value.
    pub fn text(s: &str) -> Self {
        let mut h = Self::with_capacity(s.len());
        h.push_text(s);
        h
    }

    /// Markup spelled out in the program: `'static` only, so never a string read at run time.
    pub fn raw_static(markup: &'static str) -> Self {
        Self(markup.to_owned())
    }

    /// Append `s` as escaped text (see [`Html::text`]).
    pub fn push_text(&mut self, s: &str) -> &mut Self {
        for c in s.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&#39;"),
                c => self.0.push(c),
            }
        }
        self
    }

    /// Append markup spelled out in the program.
    pub fn push_static(&mut self, markup: &'static str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Append a piece: a markup literal, a number or other [`Html`].
    pub fn push(&mut self, piece: impl Piece) -> &mut Self {
        piece.push_into(self);
        self
    }

    /// `parts` one after the other, `separator` between them.
    pub fn join(parts: impl IntoIterator<Item = Html>, separator: &'static str) -> Self {
        let mut out = Self::new();
        for (i, p) in parts.into_iter().enumerate() {
            if i > 0 {
                out.push_static(separator);
            }
            out.0.push_str(&p.0);
        }
        out
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The markup.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The markup, as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Html {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A number written with a fixed count of decimals (`Fixed(x, 1)` is `{x:.1}`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fixed(pub f64, pub usize);

mod sealed {
    /// Keeps [`super::Piece`] to the types of this module's choosing.
    pub trait Sealed {}
}

/// What [`Html::push`] and `html!` take unescaped: markup literals, numbers and [`Html`].
/// Sealed: implemented here only.
pub trait Piece: sealed::Sealed {
    /// Append `self` to `h`.
    fn push_into(self, h: &mut Html);
}

impl sealed::Sealed for &'static str {}
impl Piece for &'static str {
    fn push_into(self, h: &mut Html) {
        h.push_static(self);
    }
}

impl sealed::Sealed for Html {}
impl Piece for Html {
    fn push_into(self, h: &mut Html) {
        h.0.push_str(&self.0);
    }
}

impl sealed::Sealed for &Html {}
impl Piece for &Html {
    fn push_into(self, h: &mut Html) {
        h.0.push_str(&self.0);
    }
}

impl sealed::Sealed for Fixed {}
impl Piece for Fixed {
    fn push_into(self, h: &mut Html) {
        let _ = write!(h.0, "{:.*}", self.1, self.0);
    }
}

/// Integers, `bool` and `f64` print only digits, signs, `.`, `e`, `true`, `false`, `NaN`
/// or `inf`: nothing HTML gives a meaning to.
macro_rules! display_pieces {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Piece for $t {
            fn push_into(self, h: &mut Html) {
                let _ = write!(h.0, "{self}");
            }
        }
    )*};
}
display_pieces!(u8, u16, u32, u64, usize, i32, i64, bool, f64);

/// Append pieces to an [`Html`]: `html!(h, "<td>", Html::text(name), "</td>")`. Each
/// argument is a [`Piece`]: a markup literal, a number or [`Html`]; text goes through
/// [`Html::text`].
macro_rules! html {
    ($h:ident, $($piece:expr),+ $(,)?) => {{
        $( $h.push($piece); )+
    }};
}
pub(crate) use html;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_the_five_characters() {
        assert_eq!(
            Html::text(r#"<a href="x">'&'</a>"#).as_str(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(Html::text("plain é → text").as_str(), "plain é → text");
    }

    #[test]
    fn pieces_write_markup_numbers_and_escaped_text() {
        let mut h = Html::new();
        html!(
            h,
            "<td x=\"",
            Fixed(1.26, 1),
            "\" n=\"",
            12_345usize,
            "\" w=\"",
            640.0,
            "\">",
            Html::text("<b>"),
            "</td>",
            false
        );
        assert_eq!(
            h.as_str(),
            "<td x=\"1.3\" n=\"12345\" w=\"640\">&lt;b&gt;</td>false"
        );
        let joined = Html::join([Html::text("a<"), Html::raw_static("<br>")], ", ");
        assert_eq!(joined.as_str(), "a&lt;, <br>");
        assert!(Html::new().is_empty());
        assert_eq!(Html::raw_static("<p>").to_string(), "<p>");
    }
}
