//! Deterministic test images: OCI layouts built from fixed contents (fixed mtimes, sorted tar
//! entries, gzip without timestamps), pushed to a registry with skopeo.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use pyrsia_core::digest::{Digest, Hasher};
use serde_json::{Value, json};

/// A blob written into the layout: what a descriptor needs.
#[derive(Clone, Debug)]
pub struct Blob {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// A layer: the blob plus its uncompressed digest (the config's `diff_id`).
#[derive(Clone, Debug)]
pub struct Layer {
    /// The stored (maybe compressed) blob.
    pub blob: Blob,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The layer's media type.
    pub media_type: &'static str,
}

/// An image that has been pushed: where it is and what its parts are.
#[derive(Clone, Debug)]
pub struct PushedImage {
    /// `repository:tag` on the registry, e.g. `library/small:1`.
    pub reference: String,
    /// The top-level manifest or index digest.
    pub digest: Digest,
    /// Every layer blob (of every platform).
    pub layers: Vec<Layer>,
}

/// An OCI image layout directory being filled.
pub struct Layout {
    dir: PathBuf,
    manifests: Vec<Value>,
}

struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Layout {
    /// Starts an empty layout in `dir`.
    pub fn new(dir: &Path) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        Layout {
            dir: dir.to_path_buf(),
            manifests: Vec::new(),
        }
    }

    fn put(&self, bytes: &[u8]) -> Blob {
        let digest = Digest::sha256(bytes);
        fs::write(
            self.dir.join("blobs/sha256").join(digest.hex().as_str()),
            bytes,
        )
        .expect("blob");
        Blob {
            digest,
            size: bytes.len() as u64,
        }
    }

    /// A gzip layer holding `files` (name, contents), deterministic.
    pub fn gzip_layer(&self, files: &[(&str, Vec<u8>)]) -> Layer {
        let tar = tar_bytes(files);
        let diff_id = Digest::sha256(&tar);
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gzip");
        let blob = self.put(&gz.finish().expect("gzip"));
        Layer {
            blob,
            diff_id,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }

    /// A layer with one file of `size` pseudo-random bytes from `seed`, gzip-framed without
    /// compression (the data is incompressible; registries clients would otherwise recompress
    /// an uncompressed layer on push), streamed to disk.
    pub fn large_layer(&self, size: u64, seed: u64) -> Layer {
        let temp = self.dir.join("large.tmp");
        let file = HashingWriter {
            inner: io::BufWriter::new(File::create(&temp).expect("large layer")),
            hasher: Hasher::new(),
            len: 0,
        };
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(file, flate2::Compression::none());
        let mut tar_out = HashingWriter {
            inner: gz,
            hasher: Hasher::new(),
            len: 0,
        };
        {
            let mut builder = tar::Builder::new(&mut tar_out);
            let mut header = file_header("data.bin", size);
            header.set_cksum();
            builder
                .append(&header, PseudoRandom::new(seed, size))
                .expect("large layer");
            builder.finish().expect("tar");
        }
        let diff_id = tar_out.hasher.clone().finish();
        let mut file = tar_out.inner.finish().expect("gzip");
        file.flush().expect("flush");
        let (digest, len) = (file.hasher.clone().finish(), file.len);
        drop(file);
        fs::rename(
            &temp,
            self.dir.join("blobs/sha256").join(digest.hex().as_str()),
        )
        .expect("rename");
        Layer {
            blob: Blob { digest, size: len },
            diff_id,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }

    /// Writes a config and a manifest for `layers` on a platform; returns the manifest blob.
    pub fn manifest(&self, layers: &[Layer], architecture: &str) -> Blob {
        let config = json!({
            "architecture": architecture,
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>()},
        });
        let config = self.put(&serde_json::to_vec(&config).expect("json"));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest.to_string(), "size": config.size},
            "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.blob.digest.to_string(), "size": l.blob.size})).collect::<Vec<_>>(),
        });
        self.put(&serde_json::to_vec(&manifest).expect("json"))
    }

    /// Writes an index over platform manifests; returns its blob.
    pub fn index(&self, platforms: &[(Blob, &str)]) -> Blob {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": platforms.iter().map(|(m, arch)| json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": m.digest.to_string(), "size": m.size,
                "platform": {"architecture": arch, "os": "linux"},
            })).collect::<Vec<_>>(),
        });
        self.put(&serde_json::to_vec(&index).expect("json"))
    }

    /// Names a top-level manifest or index in `index.json` under `tag`.
    pub fn tag(&mut self, blob: &Blob, media_type: &str, tag: &str) {
        self.manifests.push(json!({
            "mediaType": media_type, "digest": blob.digest.to_string(), "size": blob.size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        let index = json!({"schemaVersion": 2, "manifests": self.manifests});
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).expect("json"),
        )
        .expect("index.json");
    }

    /// Pushes the image tagged `tag` to `registry` (`127.0.0.1:port`) as `repository:tag`.
    /// `format` is `None` (keep OCI) or `Some("v2s2")` (convert to Docker schema 2).
    pub fn push(&self, tag: &str, registry: &str, repository: &str, format: Option<&str>) {
        let mut command = Command::new("skopeo");
        command.args(["copy", "--quiet", "--all", "--dest-tls-verify=false"]);
        if let Some(format) = format {
            command.args(["--format", format]);
        }
        command
            .arg(format!("oci:{}:{tag}", self.dir.display()))
            .arg(format!("docker://{registry}/{repository}:{tag}"));
        crate::clients::run_ok(&mut command);
    }
}

fn file_header(name: &str, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).expect("tar path");
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

fn tar_bytes(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut sorted: Vec<_> = files.iter().collect();
    sorted.sort_by_key(|(name, _)| *name);
    let mut builder = tar::Builder::new(Vec::new());
    for (name, contents) in sorted {
        let mut header = file_header(name, contents.len() as u64);
        header.set_cksum();
        builder.append(&header, contents.as_slice()).expect("tar");
    }
    builder.into_inner().expect("tar")
}

/// Deterministic incompressible bytes: byte `i` depends only on the seed and `i`, however
/// the reads are sized.
pub struct PseudoRandom {
    seed: u64,
    position: u64,
    len: u64,
}

impl PseudoRandom {
    /// `len` bytes from `seed`.
    pub fn new(seed: u64, len: u64) -> Self {
        PseudoRandom {
            seed,
            position: 0,
            len,
        }
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl io::Read for PseudoRandom {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = usize::try_from(self.len - self.position)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let mut i = 0;
        while i < n {
            let position = self.position + i as u64;
            let block = splitmix(self.seed ^ (position / 8)).to_le_bytes();
            let offset = (position % 8) as usize;
            let take = (8 - offset).min(n - i);
            buf[i..i + take].copy_from_slice(&block[offset..offset + take]);
            i += take;
        }
        self.position += n as u64;
        Ok(n)
    }
}

/// The OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Builds and pushes the standard test images to `registry` and returns them:
/// `library/small:1` (one gzip layer, Docker schema 2), `team/multi:1` (three layers, OCI),
/// `library/multiarch:1` (an OCI index for amd64 and arm64).
pub fn push_standard_images(work: &Path, registry: &str) -> Vec<PushedImage> {
    let mut images = Vec::new();
    let layout_dir = work.join("layout-standard");
    let mut layout = Layout::new(&layout_dir);

    let small = layout.gzip_layer(&[("hello.txt", b"hello from pyrsia\n".to_vec())]);
    let small_manifest = layout.manifest(std::slice::from_ref(&small), "amd64");
    layout.tag(&small_manifest, OCI_MANIFEST, "small");

    let multi: Vec<Layer> = (0..3)
        .map(|i| {
            layout.gzip_layer(&[(
                &format!("layer{i}/file.txt"),
                format!("layer {i}\n").repeat(1000).into_bytes(),
            )])
        })
        .collect();
    let multi_manifest = layout.manifest(&multi, "amd64");
    layout.tag(&multi_manifest, OCI_MANIFEST, "multi");

    let amd = layout.gzip_layer(&[("arch.txt", b"amd64\n".to_vec())]);
    let arm = layout.gzip_layer(&[("arch.txt", b"arm64\n".to_vec())]);
    let amd_manifest = layout.manifest(std::slice::from_ref(&amd), "amd64");
    let arm_manifest = layout.manifest(std::slice::from_ref(&arm), "arm64");
    let index = layout.index(&[(amd_manifest, "amd64"), (arm_manifest, "arm64")]);
    layout.tag(&index, OCI_INDEX, "multiarch");

    layout.push("small", registry, "library/small", Some("v2s2"));
    layout.push("multi", registry, "team/multi", None);
    layout.push("multiarch", registry, "library/multiarch", None);

    // Schema 2 conversion changes the manifest digest: ask the registry for it.
    images.push(PushedImage {
        digest: crate::clients::remote_digest(registry, "library/small:small"),
        reference: "library/small:small".into(),
        layers: vec![small],
    });
    images.push(PushedImage {
        digest: multi_manifest.digest,
        reference: "team/multi:multi".into(),
        layers: multi,
    });
    images.push(PushedImage {
        digest: index.digest,
        reference: "library/multiarch:multiarch".into(),
        layers: vec![amd, arm],
    });
    images
}

/// Builds and pushes `library/large:large`: one uncompressed layer of `size` bytes.
pub fn push_large_image(work: &Path, registry: &str, size: u64) -> PushedImage {
    push_large_image_named(work, registry, size, "large")
}

/// Builds and pushes `library/<name>:<name>`: one uncompressed layer of `size` bytes whose
/// content depends on `name` (two names, two different layers).
pub fn push_large_image_named(work: &Path, registry: &str, size: u64, name: &str) -> PushedImage {
    let mut layout = Layout::new(&work.join(format!("layout-{name}")));
    let seed = match name {
        "large" => 0x5eed,
        _ => name
            .bytes()
            .fold(0x5eed_u64, |h, b| h.rotate_left(7) ^ u64::from(b)),
    };
    let layer = layout.large_layer(size, seed);
    let manifest = layout.manifest(std::slice::from_ref(&layer), "amd64");
    layout.tag(&manifest, OCI_MANIFEST, name);
    let repository = format!("library/{name}");
    layout.push(name, registry, &repository, None);
    PushedImage {
        reference: format!("{repository}:{name}"),
        digest: manifest.digest,
        layers: vec![layer],
    }
}
