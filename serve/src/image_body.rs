//! Image requests for a model that takes images: a PNG or JPEG body
//! (`application/x-image`, SageMaker's image convention, or `image/png`, `image/jpeg`), or
//! JSON `{"instances": [{"b64": "<base64 PNG or JPEG>"}, ...]}`. Each image must have
//! exactly the card's size and channels (nothing is resized or converted); pixels go to the
//! model scaled to [0, 1], channel-major.

use airlock_model::decode_image;
use airlock_schemas::ImageInput;
use base64::Engine as _;
use serde::Deserialize;

use crate::body::BadRequest;

/// Most images in one JSON request.
pub const MAX_IMAGES: usize = 256;

/// One image body.
pub fn parse_image(shape: &ImageInput, body: &[u8]) -> Result<Vec<f32>, BadRequest> {
    let pixels = decode_image(body, shape).map_err(|e| BadRequest(format!("image: {e}")))?;
    Ok(pixels.into_iter().map(|v| f32::from(v) / 255.0).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Instances {
    instances: Vec<Instance>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Instance {
    b64: String,
}

/// `{"instances": [{"b64": ...}, ...]}`: each a base64 PNG or JPEG.
pub fn parse_image_json(shape: &ImageInput, body: &[u8]) -> Result<Vec<f32>, BadRequest> {
    let req: Instances = airlock_schemas::strict_json::from_slice(body).map_err(|e| {
        BadRequest(format!(
            "expected {{\"instances\": [{{\"b64\": \"<base64 PNG or JPEG>\"}}, ...]}}: {e}"
        ))
    })?;
    if req.instances.len() > MAX_IMAGES {
        return Err(BadRequest(format!(
            "{} images in one request, at most {MAX_IMAGES}",
            req.instances.len()
        )));
    }
    let mut x = Vec::new();
    for (i, inst) in req.instances.iter().enumerate() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(inst.b64.trim())
            .map_err(|_| BadRequest(format!("instance {i}: b64 is not base64")))?;
        let px = parse_image(shape, &bytes)
            .map_err(|BadRequest(m)| BadRequest(format!("instance {i}: {m}")))?;
        x.extend(px);
    }
    Ok(x)
}
