//! The shell integration: completion scripts and the man page.

use crate::helpers::Sandbox;

/// Every subcommand a person types.
const SUBCOMMANDS: [&str; 15] = [
    "run",
    "demo-data",
    "train",
    "predict",
    "keygen",
    "package",
    "verify",
    "review",
    "sbom",
    "approve",
    "reject",
    "publish",
    "pull",
    "serve",
    "audit",
];

#[test]
fn bash_completions_offer_every_subcommand_and_their_flags() {
    let sb = Sandbox::new();
    let script = sb.ok(&["completions", "bash"]);
    assert!(script.contains("complete -F _airlock"), "{script}");
    // The words offered after `airlock `.
    let top = script
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("opts=\"-h -V ") && l.contains(" demo-data "))
        .unwrap_or_else(|| panic!("no top-level completions: {script}"));
    for sub in SUBCOMMANDS.iter().chain(&["completions", "--log-format"]) {
        assert!(
            top.split(['"', ' ']).any(|w| w == *sub),
            "{sub} is not offered: {top}"
        );
    }
    // Flags of the subcommands, and the stage names `run --from` takes.
    assert!(script.contains("--require-approvals") && script.contains("--allow-downgrade"));
    assert!(
        script.contains("train package gate publish deploy"),
        "{script}"
    );
}

#[test]
fn every_shell_gets_a_script_and_an_unknown_one_is_a_usage_error() {
    let sb = Sandbox::new();
    for (shell, marker) in [
        ("zsh", "#compdef airlock"),
        ("fish", "complete -c airlock"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[airlock]"),
    ] {
        let script = sb.ok(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(
            script.contains("demo-data"),
            "{shell} lists the subcommands"
        );
    }
    let err = sb.fails(&["completions", "tcsh"], 2);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
}

#[test]
fn man_page_renders_with_every_subcommand() {
    let sb = Sandbox::new();
    let page = sb.ok(&["man"]);
    // roff: after the preamble's string definitions, the title macro, then the sections.
    let first_macro = page
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap_or_default();
    assert!(first_macro.starts_with(".TH airlock 1"), "{page}");
    assert!(
        page.contains(".SH NAME") && page.contains(".SH SUBCOMMANDS"),
        "{page}"
    );
    for sub in SUBCOMMANDS {
        let name = format!("airlock\\-{}(1)", sub.replace('-', "\\-"));
        assert!(page.contains(&name), "{name}: {page}");
    }
    // The exit codes, from --help's footer.
    assert!(page.contains("waiting for officer approvals"), "{page}");
}

#[test]
fn man_pages_for_every_command_go_to_a_directory() {
    let sb = Sandbox::new();
    sb.ok(&["man", "--out-dir", "man"]);
    for sub in SUBCOMMANDS {
        let page = std::fs::read_to_string(sb.join(&format!("man/airlock-{sub}.1")))
            .unwrap_or_else(|e| panic!("airlock-{sub}.1: {e}"));
        assert!(page.contains(&format!(".TH airlock-{sub} 1")), "{page}");
    }
    let top = std::fs::read_to_string(sb.join("man/airlock.1")).expect("airlock.1");
    assert_eq!(top, sb.ok(&["man"]), "the same page either way");
    assert!(sb.join("man/airlock-audit-verify.1").is_file());
    assert!(
        !sb.join("man/airlock-man.1").exists(),
        "the hidden command has no page"
    );
}

#[test]
fn the_man_command_is_not_in_the_help() {
    let sb = Sandbox::new();
    let help = sb.ok(&["--help"]);
    assert!(
        help.contains("completions") && !help.contains("\n  man "),
        "{help}"
    );
}

#[test]
fn log_format_json_and_rust_log_shape_the_notes_but_not_the_summary() {
    let sb = crate::pipeline_run::demo_sandbox(500);
    let until_train = ["--until", "train", "--log-format", "json"];
    let (code, _, err) = crate::pipeline_run::run(&sb, &[], &until_train);
    assert_eq!(code, 0, "{err}");
    // Notes and warnings are JSON objects, one a line; the summary is as ever.
    let events: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let note = |level: &str, start: &str| {
        events.iter().any(|e| {
            e["level"] == level && e["message"].as_str().is_some_and(|m| m.starts_with(start))
        })
    };
    assert!(
        note(
            "WARN",
            "DEMO: pipelines/fraud-detector.toml has no [signing]"
        ),
        "{err}"
    );
    assert!(note("INFO", "== train ("), "{err}");
    assert!(!err.lines().any(|l| l.starts_with("== train")), "{err}");
    assert!(
        err.contains("\n== summary: fraud-detector 1.0.0 (DEMO)"),
        "{err}"
    );
    // RUST_LOG=warn: the warning stays, the progress note goes; plain lines by default.
    let env = [("RUST_LOG".to_owned(), "warn".to_owned())];
    let (code, _, err) = crate::pipeline_run::run(&sb, &env, &["--until", "train"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.starts_with("DEMO: pipelines/fraud-detector.toml has no [signing]"),
        "{err}"
    );
    assert!(!err.contains("== train: skipped"), "{err}");
    assert!(
        err.contains("  train    skipped"),
        "the summary still says so: {err}"
    );
}
