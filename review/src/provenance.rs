//! The parts of a SLSA provenance predicate the page shows.

/// The parts of a SLSA provenance predicate the page shows.
#[derive(Debug, Default)]
pub(crate) struct Provenance {
    pub(crate) pipeline_name: Option<String>,
    pub(crate) pipeline_sha256: Option<String>,
    pub(crate) git_commit: Option<String>,
    /// (file name, sha256) of every training-data dependency.
    pub(crate) training_data: Vec<(String, String)>,
    /// (name, sha256) of the training record(s).
    pub(crate) training_record: Vec<(String, String)>,
    pub(crate) builder_id: Option<String>,
    pub(crate) internal: Vec<(String, String)>,
    pub(crate) started: Option<String>,
    pub(crate) finished: Option<String>,
}

pub(crate) fn parse_provenance(v: &serde_json::Value) -> Provenance {
    // Accept the whole statement too: the predicate is what the page needs either way.
    let p = v.get("predicate").unwrap_or(v);
    let s = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let build = p.get("buildDefinition");
    let pipeline = build
        .and_then(|b| b.get("externalParameters"))
        .and_then(|e| e.get("pipeline"));
    let mut out = Provenance {
        pipeline_name: s(pipeline.and_then(|p| p.get("name"))),
        pipeline_sha256: s(pipeline.and_then(|p| p.get("sha256"))),
        builder_id: s(p.pointer("/runDetails/builder/id")),
        started: s(p.pointer("/runDetails/metadata/startedOn")),
        finished: s(p.pointer("/runDetails/metadata/finishedOn")),
        ..Provenance::default()
    };
    if let Some(internal) = build
        .and_then(|b| b.get("internalParameters"))
        .and_then(|i| i.as_object())
    {
        out.internal = internal
            .iter()
            .map(|(k, v)| (k.clone(), crate::format::json_scalar(v)))
            .collect();
    }
    let deps = build
        .and_then(|b| b.get("resolvedDependencies"))
        .and_then(|d| d.as_array())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for dep in deps {
        let name = dep.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        let sha = s(dep.pointer("/digest/sha256")).unwrap_or_default();
        if let Some(file) = name.strip_prefix("training-data:") {
            out.training_data.push((file.to_owned(), sha));
        } else if let Some(rec) = name.strip_prefix("training-record:") {
            out.training_record.push((rec.to_owned(), sha));
        } else if name == "source" {
            out.git_commit = s(dep.pointer("/digest/gitCommit"));
        }
    }
    out
}
