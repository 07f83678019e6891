//! The `s3://bucket/prefix` registry (aws-sdk-s3).
//!
//! - Small blobs go up in one PutObject; large ones as multipart uploads with parts in
//!   parallel, each part carrying its SHA-256 (the store refuses a part whose bytes differ).
//! - Every blob is then read back, part by part in parallel, and each part's digest compared
//!   with the local one: some S3-compatible stores check nothing.
//! - An interrupted multipart upload is resumed: the parts already stored with the right
//!   SHA-256 are kept, the others are sent again.
//! - A blob already present is skipped when its size and recorded digest match.

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest as _;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::aws::{Aws, ChecksumPolicy, describe};
use crate::registry::{Location, Registry, RegistryError, blob_key};

/// Object metadata key holding a blob's SHA-256 (hex).
pub const SHA256_META: &str = "airlock-sha256";

/// What an upload sent, for the read-back.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// Object length.
    pub len: u64,
    /// Part size (the whole object for single uploads).
    pub part_size: u64,
    /// SHA-256 (hex) of each part, in order.
    pub part_digests: Vec<String>,
    /// Bytes sent (less than `len` when a resumed upload kept stored parts).
    pub sent: u64,
}

/// A part of an unfinished upload: ETag, SHA-256 (base64) when the store reports it, size.
type StoredPart = (Option<String>, Option<String>, i64);

/// A registry in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Registry {
    aws: Aws,
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    /// Set once the owner is confirmed: every later request names it, so S3 itself refuses
    /// if the bucket changed hands in between.
    owner: Arc<std::sync::Mutex<Option<String>>>,
}

fn s3_err(action: &'static str, key: &str, message: String) -> RegistryError {
    RegistryError::Remote {
        action,
        key: key.to_owned(),
        message,
    }
}

/// Parse `s3://bucket[/prefix]`.
pub fn parse_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    // The prefix is a key like any other: no `..`, `%`, empty segments...
    let prefix = prefix.trim_matches('/');
    let ok = ok && crate::registry::check_key(prefix).is_ok();
    ok.then(|| (bucket.to_owned(), prefix.to_owned()))
}

impl S3Registry {
    /// A registry at `bucket`/`prefix`.
    pub fn new(aws: Aws, bucket: String, prefix: String) -> Self {
        let client = aws.s3(None);
        Self {
            aws,
            client,
            bucket,
            prefix,
            owner: Arc::default(),
        }
    }

    /// The full object key of a registry key, which must pass
    /// [`crate::registry::check_key`] (no `..`, `%`, `\\`, NUL, empty segments...).
    pub fn key(&self, key: &str) -> Result<String, RegistryError> {
        crate::registry::check_key(key)?;
        Ok(if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Delete every object under `prefix` (a registry key); returns their registry keys.
    pub fn delete_under(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        let keys = self.list(prefix)?;
        for key in &keys {
            let full = self.key(key)?;
            self.block(async {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&full)
                    .set_expected_bucket_owner(self.owner())
                    .send()
                    .await
                    .map_err(|e| s3_err("delete", &full, describe(&e)))
            })?;
        }
        Ok(keys)
    }

    fn owner(&self) -> Option<String> {
        self.owner.lock().ok().and_then(|o| o.clone())
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        self.aws.rt.block_on(f)
    }

    async fn head(
        &self,
        key: &str,
    ) -> Result<Option<aws_sdk_s3::operation::head_object::HeadObjectOutput>, RegistryError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner())
            .send()
            .await
        {
            Ok(h) => Ok(Some(h)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(s3_err("look up", key, describe(&e))),
        }
    }

    /// The parts of an unfinished upload: number → (ETag, SHA-256 if reported, size).
    async fn stored_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<HashMap<i32, StoredPart>, RegistryError> {
        let mut stored = HashMap::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .set_expected_bucket_owner(self.owner())
                .send()
                .await
                .map_err(|e| s3_err("list parts of", key, describe(&e)))?;
            for p in out.parts() {
                if let Some(n) = p.part_number() {
                    stored.insert(
                        n,
                        (
                            p.e_tag().map(str::to_owned),
                            p.checksum_sha256().map(str::to_owned),
                            p.size().unwrap_or(-1),
                        ),
                    );
                }
            }
            marker = out.next_part_number_marker().map(str::to_owned);
            if !out.is_truncated().unwrap_or(false) || marker.is_none() {
                return Ok(stored);
            }
        }
    }

    /// The part size and count for a blob of `len` bytes: S3 allows 10,000 parts of 5 MiB to
    /// 5 GiB, so the part grows for very large blobs.
    fn part_plan(&self, len: u64) -> (u64, u64) {
        let part_size = self
            .aws
            .opts
            .part_size
            .max(5 << 20)
            .max(len.div_ceil(10_000).next_multiple_of(1 << 20));
        (part_size, len.div_ceil(part_size).max(1))
    }

    /// An upload of this key left by an earlier run, and its stored parts. The key is
    /// content-addressed, so its parts belong to the same bytes; each is still checked
    /// against the local digest.
    async fn unfinished(
        &self,
        key: &str,
        parts: u64,
    ) -> Result<Option<(String, HashMap<i32, StoredPart>)>, RegistryError> {
        let list = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(key)
            .set_expected_bucket_owner(self.owner())
            .send()
            .await
            .map_err(|e| s3_err("list uploads of", key, describe(&e)))?;
        let Some(id) = list
            .uploads()
            .iter()
            .find(|u| u.key() == Some(key))
            .and_then(|u| u.upload_id())
        else {
            return Ok(None);
        };
        match self.stored_parts(key, id).await {
            Ok(stored) => {
                eprintln!(
                    "  resuming an interrupted upload of {key}: {} of {parts} parts already stored",
                    stored.len()
                );
                Ok(Some((id.to_owned(), stored)))
            }
            Err(e) => {
                // Resuming saves time only: start again rather than fail.
                eprintln!("  cannot resume the interrupted upload of {key} ({e}); starting again");
                Ok(None)
            }
        }
    }

    /// Start a multipart upload of blob `sha256` at `key`; returns its id.
    async fn create_upload(
        &self,
        key: &str,
        sha256: &str,
        checksums: bool,
    ) -> Result<String, RegistryError> {
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .metadata(SHA256_META, sha256)
            .content_type("application/octet-stream")
            .set_expected_bucket_owner(self.owner());
        if checksums {
            req = req.checksum_algorithm(ChecksumAlgorithm::Sha256);
        }
        req.send()
            .await
            .map_err(|e| s3_err("start the upload of", key, describe(&e)))?
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| s3_err("start the upload of", key, "no upload id".into()))
    }

    /// Upload `path` in parts, resuming an interrupted upload of the same key.
    async fn put_multipart(
        &self,
        key: &str,
        sha256: &str,
        path: &Path,
        len: u64,
    ) -> Result<Uploaded, RegistryError> {
        let (part_size, parts) = self.part_plan(len);
        let checksums = self.aws.opts.checksums == ChecksumPolicy::Sha256;
        let (upload_id, stored) = match self.unfinished(key, parts).await? {
            Some(resumed) => resumed,
            None => (
                self.create_upload(key, sha256, checksums).await?,
                HashMap::new(),
            ),
        };
        let file =
            std::fs::File::open(path).map_err(|source| RegistryError::io("read", path, source))?;
        let job = PartJob {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id,
            owner: self.owner(),
            path: path.to_owned(),
            file: Arc::new(file),
            stored: Arc::new(stored),
            bar: progress(len, key),
            part_size,
            len,
            checksums,
        };
        let mut done = self.send_parts(&job, parts).await?;
        job.bar.finish_and_clear();
        done.sort_by_key(|p| p.number);
        self.complete(&job, &done).await?;
        Ok(Uploaded {
            len,
            part_size,
            sent: done.iter().map(|p| p.sent).sum(),
            part_digests: done.into_iter().map(|p| p.sha256_hex).collect(),
        })
    }

    /// Send parts 1..=`parts`, at most `concurrency` at a time.
    async fn send_parts(&self, job: &PartJob, parts: u64) -> Result<Vec<DonePart>, RegistryError> {
        let sem = Arc::new(Semaphore::new(self.aws.opts.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for n in 1..=parts {
            let permit = Arc::clone(&sem)
                .acquire_owned()
                .await
                .map_err(|_| s3_err("upload", &job.key, "upload cancelled".into()))?;
            let job = job.clone();
            tasks.spawn(async move {
                let _permit = permit;
                job.part(n).await
            });
        }
        let mut done = Vec::with_capacity(usize::try_from(parts).unwrap_or(0));
        while let Some(r) = tasks.join_next().await {
            done.push(r.map_err(|e| s3_err("upload", &job.key, e.to_string()))??);
        }
        Ok(done)
    }

    /// Complete the upload from its parts, in order.
    async fn complete(&self, job: &PartJob, done: &[DonePart]) -> Result<(), RegistryError> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                done.iter()
                    .map(|d| {
                        let p = CompletedPart::builder()
                            .part_number(d.number)
                            .e_tag(&d.etag);
                        if job.checksums {
                            p.checksum_sha256(&d.sha256_b64)
                        } else {
                            p
                        }
                        .build()
                    })
                    .collect(),
            ))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&job.key)
            .upload_id(&job.upload_id)
            .multipart_upload(completed)
            .set_expected_bucket_owner(self.owner())
            .send()
            .await
            .map_err(|e| s3_err("complete the upload of", &job.key, describe(&e)))?;
        Ok(())
    }

    /// Upload blob `sha256` from `path` without reading it back (see [`Self::check_blob`];
    /// [`Registry::put_blob`] does both).
    pub fn upload_blob(&self, sha256: &str, path: &Path) -> Result<Uploaded, RegistryError> {
        let key = self.key(&blob_key(sha256))?;
        let len = std::fs::metadata(path)
            .map_err(|source| RegistryError::io("read", path, source))?
            .len();
        self.block(async {
            if len <= self.aws.opts.part_size.max(5 << 20) {
                let bytes = std::fs::read(path)
                    .map_err(|source| RegistryError::io("read", path, source))?;
                let got = hex::encode(Sha256::digest(&bytes));
                if got != sha256 {
                    return Err(RegistryError::Corrupt {
                        sha256: sha256.to_owned(),
                        got: format!("{got} (changed on disk)"),
                    });
                }
                self.put_single(&key, Some(sha256), bytes).await?;
                Ok(Uploaded {
                    len,
                    part_size: len.max(1),
                    part_digests: vec![sha256.to_owned()],
                    sent: len,
                })
            } else {
                self.put_multipart(&key, sha256, path, len).await
            }
        })
    }

    /// Read an uploaded blob back, in parallel ranges, and compare with what was sent.
    pub fn check_blob(&self, sha256: &str, up: &Uploaded) -> Result<(), RegistryError> {
        let key = self.key(&blob_key(sha256))?;
        self.block(self.read_back(&key, sha256, up.len, up.part_size, &up.part_digests))
    }

    /// Read the object back in parallel ranges and compare each range's digest with the
    /// local one (equal digests for every range of equal length: equal bytes).
    async fn read_back(
        &self,
        key: &str,
        sha256: &str,
        len: u64,
        part_size: u64,
        part_digests: &[String],
    ) -> Result<(), RegistryError> {
        let head = self.head(key).await?.ok_or_else(|| {
            s3_err(
                "read back",
                key,
                "the object is missing after upload".into(),
            )
        })?;
        let stored_len = head.content_length().and_then(|l| u64::try_from(l).ok());
        if stored_len != Some(len) {
            return Err(RegistryError::Corrupt {
                sha256: sha256.to_owned(),
                got: format!(
                    "an object of {} bytes instead of {len}",
                    stored_len.map_or_else(|| "unknown".into(), |l| l.to_string())
                ),
            });
        }
        if len == 0 {
            return Ok(());
        }
        // A few long ranged GETs (one per stream), each hashed part by part as it arrives:
        // fewer requests than one per part, the same per-part comparison.
        let n = part_digests.len();
        let streams = self.aws.opts.concurrency.clamp(1, n.max(1));
        let per = n.div_ceil(streams);
        let mut tasks = tokio::task::JoinSet::new();
        for first in (0..n).step_by(per.max(1)) {
            let wants: Vec<String> = part_digests[first..(first + per).min(n)].to_vec();
            let (client, bucket, key, owner) = (
                self.client.clone(),
                self.bucket.clone(),
                key.to_owned(),
                self.owner(),
            );
            let start = first as u64 * part_size;
            let end = ((first + wants.len()) as u64 * part_size).min(len) - 1;
            tasks.spawn(async move {
                let out = client
                    .get_object()
                    .bucket(&bucket)
                    .key(&key)
                    .range(format!("bytes={start}-{end}"))
                    .set_expected_bucket_owner(owner)
                    .send()
                    .await
                    .map_err(|e| s3_err("read back", &key, describe(&e)))?;
                let mut body = out.body;
                let mut h = Sha256::new();
                let (mut part, mut pos, mut in_part) = (0usize, start, 0u64);
                let part_len = |i: usize| part_size.min(len - (start + i as u64 * part_size));
                let mut bad = None;
                while let Some(chunk) = body
                    .try_next()
                    .await
                    .map_err(|e| s3_err("read back", &key, e.to_string()))?
                {
                    let mut c = &chunk[..];
                    while !c.is_empty() {
                        if part >= wants.len() {
                            bad.get_or_insert(pos);
                            break;
                        }
                        let take = usize::try_from(part_len(part) - in_part)
                            .unwrap_or(usize::MAX)
                            .min(c.len());
                        h.update(&c[..take]);
                        c = &c[take..];
                        in_part += take as u64;
                        pos += take as u64;
                        if in_part == part_len(part) {
                            if hex::encode(h.finalize_reset()) != wants[part] {
                                bad.get_or_insert(start + part as u64 * part_size);
                            }
                            part += 1;
                            in_part = 0;
                        }
                    }
                }
                if part < wants.len() {
                    bad.get_or_insert(pos);
                }
                Ok::<_, RegistryError>((bad.is_none(), bad.unwrap_or(start)))
            });
        }
        while let Some(r) = tasks.join_next().await {
            let (ok, start) = r.map_err(|e| s3_err("read back", key, e.to_string()))??;
            if !ok {
                return Err(RegistryError::Corrupt {
                    sha256: sha256.to_owned(),
                    got: format!("different bytes from offset {start}"),
                });
            }
        }
        Ok(())
    }

    async fn put_single(
        &self,
        key: &str,
        sha256: Option<&str>,
        bytes: Vec<u8>,
    ) -> Result<(), RegistryError> {
        let digest = Sha256::digest(&bytes);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
            .set_expected_bucket_owner(self.owner());
        if let Some(s) = sha256 {
            req = req.metadata(SHA256_META, s);
        }
        let req = req.body(ByteStream::from(bytes));
        // As for parts: the signed checksum header covers the body.
        let out = if self.aws.opts.checksums == ChecksumPolicy::Sha256 {
            req.checksum_sha256(B64.encode(digest))
                .customize()
                .disable_payload_signing()
                .send()
                .await
        } else {
            req.send().await
        };
        out.map_err(|e| s3_err("upload", key, describe(&e)))?;
        Ok(())
    }

    /// Read an object of at most `max` bytes: its length is checked from the response
    /// headers before the body is read, and the body is read no further than `max + 1`
    /// bytes (a server that lies about the length gains nothing).
    async fn get_max(
        &self,
        key: &str,
        max: usize,
    ) -> Result<Option<Result<Vec<u8>, u64>>, RegistryError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner())
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(s3_err("download", key, describe(&e))),
        };
        if let Some(len) = out.content_length().and_then(|l| u64::try_from(l).ok())
            && len > max as u64
        {
            return Ok(Some(Err(len)));
        }
        let mut body = out.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| s3_err("download", key, e.to_string()))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > max {
                return Ok(Some(Err(bytes.len() as u64)));
            }
        }
        Ok(Some(Ok(bytes)))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner())
            .send()
            .await
        {
            Ok(out) => {
                let b = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| s3_err("download", key, e.to_string()))?;
                Ok(Some(b.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(s3_err("download", key, describe(&e))),
        }
    }
}

/// What each part's task of a multipart upload needs.
#[derive(Clone)]
struct PartJob {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    owner: Option<String>,
    path: PathBuf,
    file: Arc<std::fs::File>,
    /// The parts an interrupted upload already stored.
    stored: Arc<HashMap<i32, StoredPart>>,
    bar: indicatif::ProgressBar,
    part_size: u64,
    len: u64,
    /// Send (and complete with) each part's SHA-256.
    checksums: bool,
}

/// A part in the store.
struct DonePart {
    number: i32,
    etag: String,
    /// SHA-256, base64 (the checksum S3 takes).
    sha256_b64: String,
    /// SHA-256, hex (for the read-back).
    sha256_hex: String,
    /// Bytes sent (0 for a part an interrupted upload already stored).
    sent: u64,
}

impl PartJob {
    /// Part `n` (1-based): read it, keep it when an interrupted upload already stored it
    /// intact, else send it.
    async fn part(self, n: u64) -> Result<DonePart, RegistryError> {
        let offset = (n - 1) * self.part_size;
        let size = self.part_size.min(self.len - offset);
        let file = Arc::clone(&self.file);
        let (buf, digest) = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX)];
            file.read_exact_at(&mut buf, offset)?;
            let digest = Sha256::digest(&buf);
            Ok::<_, std::io::Error>((buf, digest))
        })
        .await
        .map_err(|e| s3_err("read a part for", &self.key, e.to_string()))?
        .map_err(|source| RegistryError::io("read", &self.path, source))?;
        let number = i32::try_from(n).unwrap_or(i32::MAX);
        let mut done = DonePart {
            number,
            etag: String::new(),
            sha256_b64: B64.encode(digest),
            sha256_hex: hex::encode(digest),
            sent: 0,
        };
        if let Some(etag) = self.stored_intact(number, size, &done.sha256_b64, &buf) {
            self.bar.inc(size);
            done.etag = etag;
            return Ok(done);
        }
        done.etag = self.send(n, size, &done.sha256_b64, buf).await?;
        done.sent = size;
        self.bar.inc(size);
        Ok(done)
    }

    /// The ETag of part `number` when an interrupted upload stored it intact: the store's
    /// SHA-256 of it matches, or, from stores that do not report checksums, its ETag is the
    /// part's MD5 (S3's ETag of an unencrypted part). Read-back checks every byte afterwards
    /// either way.
    fn stored_intact(&self, number: i32, size: u64, b64: &str, buf: &[u8]) -> Option<String> {
        let (Some(etag), sum, stored_size) = self.stored.get(&number)? else {
            return None;
        };
        let same = u64::try_from(*stored_size).ok() == Some(size)
            && match sum {
                Some(sum) => sum == b64,
                None => etag.trim_matches('"') == hex::encode(md5::Md5::digest(buf)),
            };
        same.then(|| etag.clone())
    }

    /// Send part `n`; returns its ETag.
    async fn send(
        &self,
        n: u64,
        size: u64,
        b64: &str,
        buf: Vec<u8>,
    ) -> Result<String, RegistryError> {
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(i32::try_from(n).unwrap_or(i32::MAX))
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .set_expected_bucket_owner(self.owner.clone())
            .body(ByteStream::from(buf));
        // With a SHA-256 checksum header (signed, and checked by the store against the
        // body) the SigV4 payload hash would be a second SHA-256 of the same bytes: skip
        // it. Without checksums the payload stays signed.
        let out = if self.checksums {
            req.checksum_sha256(b64)
                .customize()
                .disable_payload_signing()
                .send()
                .await
        } else {
            req.send().await
        };
        let out = out.map_err(|e| {
            s3_err(
                "upload a part of",
                &self.key,
                format!("part {n}: {}", describe(&e)),
            )
        })?;
        out.e_tag()
            .map(str::to_owned)
            .ok_or_else(|| s3_err("upload a part of", &self.key, format!("part {n}: no ETag")))
    }
}

fn progress(len: u64, key: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "  {msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(
        key.rsplit('/')
            .next()
            .map_or_else(String::new, |k| k.chars().take(12).collect()),
    );
    bar
}

impl Registry for S3Registry {
    fn uri(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn location(&self, allowed_accounts: &[String]) -> Result<Location, RegistryError> {
        self.block(async {
            let out = self
                .client
                .get_bucket_location()
                .bucket(&self.bucket)
                .send()
                .await
                .map_err(|e| s3_err("locate bucket", &self.bucket, describe(&e)))?;
            // An empty constraint means us-east-1; "EU" is the legacy name of eu-west-1.
            let region = match out.location_constraint().map(|c| c.as_str()) {
                None | Some("") => "us-east-1".to_owned(),
                Some("EU") => "eu-west-1".to_owned(),
                Some(r) => r.to_owned(),
            };
            let mut account = None;
            for a in allowed_accounts {
                // S3 answers 403 when the bucket's owner is not the expected account.
                if self
                    .client
                    .head_bucket()
                    .bucket(&self.bucket)
                    .expected_bucket_owner(a)
                    .send()
                    .await
                    .is_ok()
                {
                    account = Some(a.clone());
                    break;
                }
            }
            if let (Some(a), Ok(mut o)) = (&account, self.owner.lock()) {
                *o = Some(a.clone());
            }
            Ok(Location { region, account })
        })
    }

    fn has_blob(&self, sha256: &str, len: u64) -> Result<bool, RegistryError> {
        let key = self.key(&blob_key(sha256))?;
        self.block(async {
            Ok(self.head(&key).await?.is_some_and(|h| {
                h.content_length().and_then(|l| u64::try_from(l).ok()) == Some(len)
                    && h.metadata()
                        .and_then(|m| m.get(SHA256_META))
                        .map(String::as_str)
                        == Some(sha256)
            }))
        })
    }

    fn put_blob(&self, sha256: &str, path: &Path) -> Result<u64, RegistryError> {
        let up = self.upload_blob(sha256, path)?;
        self.check_blob(sha256, &up)?;
        Ok(up.sent)
    }

    fn put_object(&self, key: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let key = self.key(key)?;
        self.block(self.put_single(&key, None, bytes.to_vec()))
    }

    fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let key = self.key(key)?;
        self.block(self.get(&key))
    }

    fn get_object_max(
        &self,
        key: &str,
        max: usize,
    ) -> Result<Option<Result<Vec<u8>, u64>>, RegistryError> {
        let key = self.key(key)?;
        self.block(self.get_max(&key, max))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        let full = self.key(prefix)?;
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        self.block(async {
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(&full)
                    .set_continuation_token(token.clone())
                    .set_expected_bucket_owner(self.owner())
                    .send()
                    .await
                    .map_err(|e| s3_err("list", &full, describe(&e)))?;
                out.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key())
                        .filter_map(|k| k.strip_prefix(&strip).map(str::to_owned)),
                );
                token = page.next_continuation_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            out.sort();
            Ok(out)
        })
    }

    fn get_blob(&self, sha256: &str, dest: &Path) -> Result<u64, RegistryError> {
        let key = self.key(&blob_key(sha256))?;
        let io = |action: &'static str| {
            let path = dest.to_owned();
            move |source| RegistryError::io(action, &path, source)
        };
        self.block(async {
            let head = self
                .head(&key)
                .await?
                .ok_or_else(|| s3_err("download", &key, "no such blob".into()))?;
            let len = head
                .content_length()
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(0);
            let file = Arc::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(dest)
                    .map_err(io("create"))?,
            );
            file.set_len(len).map_err(io("size"))?;
            // One long ranged GET per stream, each written at its offset.
            let streams = self.aws.opts.concurrency.max(1) as u64;
            let part = len
                .div_ceil(streams)
                .max(self.aws.opts.part_size.max(5 << 20));
            let sem = Arc::new(Semaphore::new(self.aws.opts.concurrency.max(1)));
            let mut tasks = tokio::task::JoinSet::new();
            let mut start = 0;
            while start < len {
                let end = (start + part).min(len) - 1;
                let permit = Arc::clone(&sem)
                    .acquire_owned()
                    .await
                    .map_err(|_| s3_err("download", &key, "cancelled".into()))?;
                let (client, bucket, key, owner, file, dest) = (
                    self.client.clone(),
                    self.bucket.clone(),
                    key.clone(),
                    self.owner(),
                    Arc::clone(&file),
                    dest.to_owned(),
                );
                tasks.spawn(async move {
                    let _permit = permit;
                    let out = client
                        .get_object()
                        .bucket(&bucket)
                        .key(&key)
                        .range(format!("bytes={start}-{end}"))
                        .set_expected_bucket_owner(owner)
                        .send()
                        .await
                        .map_err(|e| s3_err("download", &key, describe(&e)))?;
                    let mut body = out.body;
                    let mut pos = start;
                    while let Some(chunk) = body
                        .try_next()
                        .await
                        .map_err(|e| s3_err("download", &key, e.to_string()))?
                    {
                        if pos + chunk.len() as u64 > end + 1 {
                            return Err(s3_err("download", &key, "longer than asked".into()));
                        }
                        file.write_all_at(&chunk, pos)
                            .map_err(|source| RegistryError::io("write", &dest, source))?;
                        pos += chunk.len() as u64;
                    }
                    if pos != end + 1 {
                        return Err(s3_err("download", &key, "shorter than asked".into()));
                    }
                    Ok::<_, RegistryError>(())
                });
                start = end + 1;
            }
            while let Some(r) = tasks.join_next().await {
                r.map_err(|e| s3_err("download", &key, e.to_string()))??;
            }
            file.sync_all().map_err(io("sync"))?;
            Ok(len)
        })
    }

    fn named_copy(
        &self,
        prefix: &str,
        files: &std::collections::BTreeMap<String, String>,
    ) -> Result<String, RegistryError> {
        self.block(async {
            for (name, sha) in files {
                let dest = self.key(&format!("{prefix}{name}"))?;
                let src = self.key(&blob_key(sha))?;
                // Server-side copy: no byte leaves the premises again.
                let mut req = self
                    .client
                    .copy_object()
                    .bucket(&self.bucket)
                    .key(&dest)
                    .copy_source(format!("{}/{}", self.bucket, src))
                    .set_expected_bucket_owner(self.owner());
                if self.aws.opts.checksums == ChecksumPolicy::Sha256 {
                    req = req.checksum_algorithm(ChecksumAlgorithm::Sha256);
                }
                req.send()
                    .await
                    .map_err(|e| s3_err("copy", &dest, describe(&e)))?;
            }
            Ok(format!("s3://{}/{}", self.bucket, self.key(prefix)?))
        })
    }
}
