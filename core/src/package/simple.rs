//! The PyPI "simple" repository API for one project: reading an upstream's page in either
//! format (PEP 691 JSON or PEP 503 HTML), and writing it for a client in the format its
//! `Accept` header asks for, with every file's URL pointing at the node. Hashes,
//! `requires-python`, yanked markers and PEP 658 metadata are kept as the upstream gave them.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde_json::{Map, Value, json};

use crate::digest::Digest;
use crate::package::{DistFile, ProjectName};

/// The version of the release a distribution file belongs to, as log coordinates spell it:
/// the file name's version in lower case (wheel and sdist names carry normalised versions
/// since PEP 427 and PEP 625; lower case makes older names agree).
pub fn release_version(file: &DistFile<'_>) -> String {
    file.version().as_str().to_ascii_lowercase()
}

/// The PEP 691 JSON media type (version 1).
pub const SIMPLE_JSON: &str = "application/vnd.pypi.simple.v1+json";
/// The PEP 691 media type of the HTML form.
pub const SIMPLE_HTML: &str = "application/vnd.pypi.simple.v1+html";
/// What to send upstream as `Accept`: JSON preferred, HTML understood.
pub const UPSTREAM_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1";
/// The most files one project page may list.
pub const MAX_FILES: usize = 100_000;

/// One file of a project, as its index lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFile {
    /// The file name (`demo-1.0-py3-none-any.whl`).
    pub filename: String,
    /// Where the upstream serves it (absolute).
    pub url: String,
    /// The file's sha256, when the index gives one.
    pub sha256: Option<Digest>,
    /// `requires-python`, verbatim.
    pub requires_python: Option<String>,
    /// `Some(reason)` when yanked (the reason may be empty).
    pub yanked: Option<String>,
    /// PEP 658 metadata: `None` when not advertised, `Some(hash)` when it is (the hash may be
    /// unknown).
    pub metadata: Option<Option<Digest>>,
}

/// A project's page: its name and files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectIndex {
    /// The project name as the index gives it.
    pub name: String,
    /// Its files, in the index's order.
    pub files: Vec<IndexFile>,
}

/// Why an upstream page could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexError {
    /// The JSON is not a PEP 691 project page.
    Json(String),
    /// More than [`MAX_FILES`] files.
    TooManyFiles,
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Json(why) => write!(f, "not a PEP 691 project page: {why}"),
            IndexError::TooManyFiles => write!(f, "the project page lists over {MAX_FILES} files"),
        }
    }
}

impl core::error::Error for IndexError {}

/// The format of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexFormat {
    /// PEP 691 JSON.
    Json,
    /// PEP 503 HTML.
    Html,
}

impl IndexFormat {
    /// The format a client asks for: JSON when its `Accept` names the PEP 691 JSON type with a
    /// weight at least that of any HTML type, else HTML (what old clients and browsers get).
    pub fn negotiate(accept: Option<&str>) -> IndexFormat {
        let Some(accept) = accept else {
            return IndexFormat::Html;
        };
        let (mut json, mut html) = (0.0f32, 0.0f32);
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim();
            let weight = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media {
                SIMPLE_JSON => json = json.max(weight),
                SIMPLE_HTML | "text/html" | "*/*" => html = html.max(weight),
                _ => {}
            }
        }
        if json > 0.0 && json >= html {
            IndexFormat::Json
        } else {
            IndexFormat::Html
        }
    }

    /// The `Content-Type` of a page in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            IndexFormat::Json => SIMPLE_JSON,
            IndexFormat::Html => "text/html; charset=utf-8",
        }
    }

    /// The format of an upstream answer by its `Content-Type`.
    pub fn of_content_type(content_type: Option<&str>) -> IndexFormat {
        match content_type {
            Some(t)
                if t.trim_start()
                    .starts_with("application/vnd.pypi.simple.v1+json") =>
            {
                IndexFormat::Json
            }
            _ => IndexFormat::Html,
        }
    }
}

impl ProjectIndex {
    /// Reads a page fetched from `page_url` (relative file URLs resolve against it).
    pub fn parse(
        format: IndexFormat,
        body: &[u8],
        page_url: &str,
        project: &str,
    ) -> Result<ProjectIndex, IndexError> {
        match format {
            IndexFormat::Json => Self::parse_json(body, page_url),
            IndexFormat::Html => {
                Self::parse_html(&String::from_utf8_lossy(body), page_url, project)
            }
        }
    }

    fn parse_json(body: &[u8], page_url: &str) -> Result<ProjectIndex, IndexError> {
        let page: Value =
            serde_json::from_slice(body).map_err(|e| IndexError::Json(e.to_string()))?;
        let name = page["name"]
            .as_str()
            .ok_or_else(|| IndexError::Json("no name".into()))?
            .to_string();
        let listed = page["files"]
            .as_array()
            .ok_or_else(|| IndexError::Json("no files".into()))?;
        if listed.len() > MAX_FILES {
            return Err(IndexError::TooManyFiles);
        }
        let mut files = Vec::with_capacity(listed.len());
        for file in listed {
            let (Some(filename), Some(url)) = (file["filename"].as_str(), file["url"].as_str())
            else {
                return Err(IndexError::Json("a file without filename or url".into()));
            };
            let metadata = [
                "core-metadata",
                "dist-info-metadata",
                "data-dist-info-metadata",
            ]
            .iter()
            .map(|key| &file[*key])
            .find(|v| !v.is_null())
            .and_then(|v| match v {
                Value::Bool(true) => Some(None),
                Value::Object(hashes) => Some(sha256_of(hashes.get("sha256"))),
                _ => None,
            });
            files.push(IndexFile {
                filename: filename.to_string(),
                url: resolve(page_url, url),
                sha256: sha256_of(file["hashes"].get("sha256")),
                requires_python: file["requires-python"].as_str().map(str::to_string),
                yanked: match &file["yanked"] {
                    Value::Bool(true) => Some(String::new()),
                    Value::String(reason) => Some(reason.clone()),
                    _ => None,
                },
                metadata,
            });
        }
        Ok(ProjectIndex { name, files })
    }

    fn parse_html(text: &str, page_url: &str, project: &str) -> Result<ProjectIndex, IndexError> {
        let mut files = Vec::new();
        let mut rest = text;
        while let Some(start) = find_anchor(rest) {
            let after = &rest[start + 2..];
            let Some(tag_end) = after.find('>') else {
                break;
            };
            let attributes = &after[..tag_end];
            let body = &after[tag_end + 1..];
            let close = body
                .as_bytes()
                .windows(3)
                .position(|w| w[..2] == *b"</" && w[2].eq_ignore_ascii_case(&b'a'))
                .unwrap_or(body.len());
            let filename = unescape(body[..close].trim());
            rest = &body[close..];
            let Some(href) = attribute(attributes, "href") else {
                continue;
            };
            if files.len() == MAX_FILES {
                return Err(IndexError::TooManyFiles);
            }
            let (url, fragment) = match href.split_once('#') {
                Some((url, fragment)) => (url.to_string(), Some(fragment.to_string())),
                None => (href, None),
            };
            let sha256 = fragment
                .as_deref()
                .and_then(|f| f.strip_prefix("sha256="))
                .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok());
            let metadata = attribute(attributes, "data-core-metadata")
                .or_else(|| attribute(attributes, "data-dist-info-metadata"))
                .and_then(|value| match value.as_str() {
                    "false" => None,
                    "true" | "" => Some(None),
                    hash => Some(
                        hash.strip_prefix("sha256=")
                            .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok()),
                    ),
                });
            files.push(IndexFile {
                filename,
                url: resolve(page_url, &url),
                sha256,
                requires_python: attribute(attributes, "data-requires-python"),
                yanked: attribute(attributes, "data-yanked"),
                metadata,
            });
        }
        Ok(ProjectIndex {
            name: project.to_string(),
            files,
        })
    }

    /// The file named `filename`, if listed.
    pub fn file(&self, filename: &str) -> Option<&IndexFile> {
        self.files.iter().find(|f| f.filename == filename)
    }

    /// The release `version` (as [`release_version`] spells it) of `project`: every listed
    /// file whose name parses as a wheel or sdist of the project at that version, with the
    /// sha256 the page gives. What a `pypi-fetch/v1` builder fetches and attests, and what
    /// `--verified-only` checks a file against. Files the page gives no sha256 for are
    /// never fetched, so they are left out, and listed in the second list by name.
    pub fn release<'s>(
        &'s self,
        project: &ProjectName<'_>,
        version: &str,
    ) -> (Vec<(&'s IndexFile, Digest)>, Vec<&'s str>) {
        let mut checked = Vec::new();
        let mut unchecked = Vec::new();
        for file in &self.files {
            let of_release = DistFile::parse_for(project, &file.filename)
                .is_ok_and(|d| d.version().as_str().eq_ignore_ascii_case(version));
            match (of_release, file.sha256) {
                (true, Some(digest)) => checked.push((file, digest)),
                (true, None) => unchecked.push(file.filename.as_str()),
                (false, _) => {}
            }
        }
        (checked, unchecked)
    }

    /// The page in `format`, each file's URL given by `file_url(file)` (the node's own).
    pub fn render(&self, format: IndexFormat, file_url: impl Fn(&IndexFile) -> String) -> Vec<u8> {
        match format {
            IndexFormat::Json => self.render_json(file_url),
            IndexFormat::Html => self.render_html(file_url).into_bytes(),
        }
    }

    fn render_json(&self, file_url: impl Fn(&IndexFile) -> String) -> Vec<u8> {
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|file| {
                let mut entry = Map::new();
                entry.insert("filename".into(), json!(file.filename));
                entry.insert("url".into(), json!(file_url(file)));
                let mut hashes = Map::new();
                if let Some(sha256) = &file.sha256 {
                    hashes.insert("sha256".into(), json!(sha256.hex().as_str()));
                }
                entry.insert("hashes".into(), Value::Object(hashes));
                if let Some(requires) = &file.requires_python {
                    entry.insert("requires-python".into(), json!(requires));
                }
                if let Some(reason) = &file.yanked {
                    let value = if reason.is_empty() {
                        json!(true)
                    } else {
                        json!(reason)
                    };
                    entry.insert("yanked".into(), value);
                }
                if let Some(metadata) = &file.metadata {
                    let value = match metadata {
                        Some(hash) => json!({ "sha256": hash.hex().as_str() }),
                        None => json!(true),
                    };
                    // Both spellings: PEP 714's, and PEP 658's for older clients.
                    entry.insert("core-metadata".into(), value.clone());
                    entry.insert("dist-info-metadata".into(), value);
                }
                Value::Object(entry)
            })
            .collect();
        let page = json!({
            "meta": { "api-version": "1.1" },
            "name": self.name,
            "files": files,
        });
        serde_json::to_vec(&page).unwrap_or_default()
    }

    fn render_html(&self, file_url: impl Fn(&IndexFile) -> String) -> String {
        let mut html = format!(
            "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\"><title>Links for {0}</title></head>\n<body><h1>Links for {0}</h1>\n",
            escape(&self.name)
        );
        for file in &self.files {
            let mut href = file_url(file);
            if let Some(sha256) = &file.sha256 {
                href = format!("{href}#sha256={}", sha256.hex().as_str());
            }
            html += &format!("<a href=\"{}\"", escape(&href));
            if let Some(requires) = &file.requires_python {
                html += &format!(" data-requires-python=\"{}\"", escape(requires));
            }
            if let Some(reason) = &file.yanked {
                html += &format!(" data-yanked=\"{}\"", escape(reason));
            }
            if let Some(metadata) = &file.metadata {
                let value = match metadata {
                    Some(hash) => format!("sha256={}", hash.hex().as_str()),
                    None => "true".to_string(),
                };
                html +=
                    &format!(" data-core-metadata=\"{value}\" data-dist-info-metadata=\"{value}\"");
            }
            html += &format!(">{}</a><br>\n", escape(&file.filename));
        }
        html += "</body></html>\n";
        html
    }

    /// The page as this node stores it for offline use (JSON, upstream URLs kept).
    pub fn to_stored(&self) -> Vec<u8> {
        self.render_json(|file| file.url.clone())
    }

    /// Reads a page stored by [`ProjectIndex::to_stored`].
    pub fn from_stored(bytes: &[u8]) -> Result<ProjectIndex, IndexError> {
        Self::parse_json(bytes, "")
    }
}

fn sha256_of(value: Option<&Value>) -> Option<Digest> {
    let hex = value?.as_str()?;
    Digest::parse(&format!("sha256:{}", hex.to_ascii_lowercase())).ok()
}

/// The position of the next `<a ` (any case, any whitespace after the `a`).
fn find_anchor(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(2)).find(|&i| {
        bytes[i] == b'<'
            && bytes[i + 1].eq_ignore_ascii_case(&b'a')
            && bytes[i + 2].is_ascii_whitespace()
    })
}

/// The unescaped value of attribute `name` (quoted with `"` or `'`, or bare).
fn attribute(attributes: &str, name: &str) -> Option<String> {
    let lower = attributes.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find(name) {
        let at = from + found;
        from = at + name.len();
        let boundary = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = attributes[from..].trim_start();
        if !boundary {
            continue;
        }
        let Some(rest) = rest.strip_prefix('=') else {
            // A bare attribute (`data-yanked`): present, empty.
            if rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_whitespace() || c == '/') {
                return Some(String::new());
            }
            continue;
        };
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(quote @ ('"' | '\'')) => rest[1..].split(quote).next().unwrap_or(""),
            _ => rest
                .split(|c: char| c.is_ascii_whitespace())
                .next()
                .unwrap_or(""),
        };
        return Some(unescape(value));
    }
    None
}

/// Decodes the HTML character references an index uses.
fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out += &rest[..at];
        let after = &rest[at + 1..];
        let Some(end) = after.find(';').filter(|&e| e <= 8) else {
            out.push('&');
            rest = after;
            continue;
        };
        let entity = &after[..end];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out += rest;
    out
}

/// Escapes text for an HTML attribute or element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '&' => out += "&amp;",
            '"' => out += "&quot;",
            '\'' => out += "&#39;",
            c => out.push(c),
        }
    }
    out
}

/// Resolves `href` against the page's URL (absolute, scheme-relative, absolute-path or
/// relative references).
pub fn resolve(page_url: &str, href: &str) -> String {
    if href.contains("://") {
        return href.to_string();
    }
    let Some((scheme, rest)) = page_url.split_once("://") else {
        return href.to_string();
    };
    if let Some(authority_path) = href.strip_prefix("//") {
        return format!("{scheme}://{authority_path}");
    }
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let origin = &page_url[..scheme.len() + 3 + authority_end];
    if href.starts_with('/') {
        return format!("{origin}{href}");
    }
    let path = &rest[authority_end..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let directory = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let mut segments: Vec<&str> = directory.split('/').filter(|s| !s.is_empty()).collect();
    let mut href_segments = href.split('/').peekable();
    while let Some(segment) = href_segments.next() {
        match segment {
            ".." => {
                segments.pop();
            }
            "." => {}
            _ if href_segments.peek().is_none() => {
                return format!("{origin}/{}", {
                    let mut all = segments.clone();
                    all.push(segment);
                    all.join("/")
                });
            }
            _ => segments.push(segment),
        }
    }
    format!("{origin}/{}/", segments.join("/"))
}

/// The root page (`/simple/`): links to `projects` (normalised names) in `format`.
pub fn render_root(
    format: IndexFormat,
    projects: &[String],
    project_url: impl Fn(&str) -> String,
) -> Vec<u8> {
    match format {
        IndexFormat::Json => {
            let listed: Vec<Value> = projects.iter().map(|p| json!({ "name": p })).collect();
            serde_json::to_vec(&json!({ "meta": { "api-version": "1.1" }, "projects": listed }))
                .unwrap_or_default()
        }
        IndexFormat::Html => {
            let mut html = String::from(
                "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\"><title>Simple index</title></head>\n<body>\n",
            );
            for project in projects {
                html += &format!(
                    "<a href=\"{}\">{}</a><br>\n",
                    escape(&project_url(project)),
                    escape(project)
                );
            }
            html += "</body></html>\n";
            html.into_bytes()
        }
    }
}
