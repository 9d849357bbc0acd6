//! What the log takes from a Maven release's pom: its `artifactId` (a pom of another artifact
//! is not this release's) and its `packaging`, which names the release's main artifact file.
//! These decide which files a `maven-fetch/v1` build fetches and attests ([`release_files`]),
//! and which of a commit's outputs is the pom when a node gets the files from peers.
//!
//! The reader is not an XML parser: it walks tags, skipping comments, CDATA, processing
//! instructions and declarations, and reads the two elements only as direct children of the
//! root `<project>`. A value that is not a literal (a `${property}`, an entity) is refused
//! rather than guessed.

use core::fmt;

use super::maven::Gav;

/// The largest pom read, in bytes.
pub const POM_LEN_MAX: usize = 4 << 20;

/// Why a pom was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PomError {
    /// Longer than [`POM_LEN_MAX`], or not UTF-8.
    Unreadable,
    /// The root element is not `<project>`, or the tags do not nest.
    NotAPom,
    /// No `<artifactId>` under `<project>`, or two.
    ArtifactId,
    /// The `<artifactId>` is not the release's.
    OtherArtifact,
    /// A `<packaging>` that is not a literal file extension, or two of them.
    Packaging,
}

impl fmt::Display for PomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PomError::Unreadable => "the pom is too long or not UTF-8",
            PomError::NotAPom => "not a pom: the root element is not <project> or tags do not nest",
            PomError::ArtifactId => "the pom has no single <artifactId>",
            PomError::OtherArtifact => "the pom is another artifact's",
            PomError::Packaging => "the pom's <packaging> is not a literal file extension",
        })
    }
}

impl core::error::Error for PomError {}

/// The two facts of a pom the log uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PomFacts<'p> {
    /// The project's `<artifactId>`.
    pub artifact_id: &'p str,
    /// The project's `<packaging>`, `jar` when it has none.
    pub packaging: &'p str,
}

impl<'p> PomFacts<'p> {
    /// Reads `pom`'s artifact id and packaging.
    pub fn parse(pom: &'p [u8]) -> Result<Self, PomError> {
        if pom.len() > POM_LEN_MAX {
            return Err(PomError::Unreadable);
        }
        let text = core::str::from_utf8(pom).map_err(|_| PomError::Unreadable)?;
        let mut artifact_id = None;
        let mut packaging = None;
        for (name, value) in project_children(text) {
            let slot = match name? {
                "artifactId" => &mut artifact_id,
                "packaging" => &mut packaging,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(if name == Ok("artifactId") {
                    PomError::ArtifactId
                } else {
                    PomError::Packaging
                });
            }
        }
        let artifact_id = artifact_id.ok_or(PomError::ArtifactId)?.trim();
        if !is_literal(artifact_id) {
            return Err(PomError::ArtifactId);
        }
        let packaging = packaging.map_or("jar", str::trim);
        if !is_literal(packaging) {
            return Err(PomError::Packaging);
        }
        Ok(PomFacts {
            artifact_id,
            packaging,
        })
    }

    /// The extension of the main artifact this packaging produces, `None` for `pom` (a
    /// parent or a bill of materials, which is its pom alone). Packagings whose plugins
    /// produce a jar map to `jar`; any other is its own extension, as Maven's default
    /// artifact handler makes it.
    pub fn main_extension(&self) -> Option<&'p str> {
        match self.packaging {
            "pom" => None,
            "jar" | "maven-plugin" | "ejb" | "ejb-client" | "bundle" | "test-jar"
            | "java-source" | "javadoc" | "eclipse-plugin" => Some("jar"),
            other => Some(other),
        }
    }
}

/// The files of the Maven release whose pom is at `pom_gav` (from [`Gav::release`]) and reads
/// `pom`: the pom itself and, unless its packaging is `pom`, the main artifact. These are what a
/// `maven-fetch/v1` build attests, in this order; classifiers (sources, javadoc) are not part
/// of the release the log commits.
pub fn release_files<'a>(pom_gav: &Gav<'a>, pom: &'a [u8]) -> Result<ReleaseFiles<'a>, PomError> {
    let facts = PomFacts::parse(pom)?;
    if facts.artifact_id != pom_gav.artifact {
        return Err(PomError::OtherArtifact);
    }
    let main = match facts.main_extension() {
        Some(extension) => {
            let gav = pom_gav.with_file(None, extension);
            Some(gav.checked().map_err(|_| PomError::Packaging)?)
        }
        None => None,
    };
    Ok(ReleaseFiles {
        pom: *pom_gav,
        main,
    })
}

/// The most outputs a `maven-fetch/v1` commit has: the pom and the main artifact.
pub const RELEASE_OUTPUTS_MAX: usize = 2;

/// Which of a committed release's `outputs` is the `requested` file of it, given the output
/// `pom_digest` whose bytes `pom` read as the release's pom (see [`release_files`]): the pom
/// itself for the pom; for the extension the pom's packaging names, the one other output.
/// `None` for any other file (a classifier is never committed) or a commit of another shape.
/// What a node asks peers for when the upstream cannot be asked.
pub fn committed_output(
    pom_gav: &Gav<'_>,
    pom: &[u8],
    pom_digest: crate::digest::Digest,
    outputs: &[crate::digest::Digest],
    requested: &Gav<'_>,
) -> Option<crate::digest::Digest> {
    let same_release = requested.group.same_as(&pom_gav.group)
        && requested.artifact == pom_gav.artifact
        && requested.version == pom_gav.version
        && requested.classifier.is_none();
    if !same_release || outputs.len() > RELEASE_OUTPUTS_MAX || !outputs.contains(&pom_digest) {
        return None;
    }
    let main = release_files(pom_gav, pom).ok()?.main;
    let extension = requested.extension;
    if extension == "pom" {
        return Some(pom_digest);
    }
    let mut others = outputs.iter().filter(|d| **d != pom_digest);
    match (main, others.next(), others.next()) {
        (Some(main), Some(other), None) if main.extension == extension => Some(*other),
        _ => None,
    }
}

/// A Maven release's files in the log (see [`release_files`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleaseFiles<'a> {
    /// The pom.
    pub pom: Gav<'a>,
    /// The main artifact, unless the packaging is `pom`.
    pub main: Option<Gav<'a>>,
}

/// A value written literally: no `${property}`, no entity, no markup, not empty.
fn is_literal(value: &str) -> bool {
    !value.is_empty()
        && !value.contains(['$', '&', '<', '>'])
        && !value.contains(char::is_whitespace)
}

/// The direct children of the root `<project>` that have text: `(Ok(name), text)`, or one
/// `(Err(PomError::NotAPom), "")` and nothing more when the document is not a pom.
fn project_children(text: &str) -> impl Iterator<Item = (Result<&str, PomError>, &str)> {
    let mut walker = TagWalker {
        text,
        at: 0,
        depth: 0,
        root_seen: false,
        failed: false,
    };
    core::iter::from_fn(move || walker.next_child())
}

struct TagWalker<'t> {
    text: &'t str,
    at: usize,
    depth: usize,
    root_seen: bool,
    failed: bool,
}

impl<'t> TagWalker<'t> {
    fn fail(&mut self) -> Option<(Result<&'t str, PomError>, &'t str)> {
        self.failed = true;
        Some((Err(PomError::NotAPom), ""))
    }

    /// Skips past `end` from `from`, or fails.
    fn skip_past(&mut self, from: usize, end: &str) -> bool {
        match self.text[from..].find(end) {
            Some(i) => {
                self.at = from + i + end.len();
                true
            }
            None => false,
        }
    }

    fn next_child(&mut self) -> Option<(Result<&'t str, PomError>, &'t str)> {
        if self.failed {
            return None;
        }
        loop {
            let Some(open) = self.text[self.at..].find('<').map(|i| self.at + i) else {
                if self.depth != 0 || !self.root_seen {
                    return self.fail();
                }
                return None;
            };
            let rest = &self.text[open..];
            let skipped = if rest.starts_with("<!--") {
                Some(self.skip_past(open, "-->"))
            } else if rest.starts_with("<![CDATA[") {
                Some(self.skip_past(open, "]]>"))
            } else if rest.starts_with("<?") {
                Some(self.skip_past(open, "?>"))
            } else if rest.starts_with("<!") {
                Some(self.skip_past(open, ">"))
            } else {
                None
            };
            match skipped {
                Some(true) => continue,
                Some(false) => return self.fail(),
                None => {}
            }
            let Some(close) = rest.find('>') else {
                return self.fail();
            };
            let tag = &rest[1..close];
            self.at = open + close + 1;
            if let Some(_end) = tag.strip_prefix('/') {
                if self.depth == 0 {
                    return self.fail();
                }
                self.depth -= 1;
                continue;
            }
            let self_closing = tag.ends_with('/');
            let name = tag
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or("");
            let local = name.rsplit(':').next().unwrap_or(name);
            match self.depth {
                0 if self.root_seen || local != "project" || self_closing => return self.fail(),
                0 => self.root_seen = true,
                1 if !self_closing => {
                    let value_end = self.text[self.at..]
                        .find('<')
                        .map_or(self.text.len(), |i| self.at + i);
                    let value = &self.text[self.at..value_end];
                    self.depth += 1;
                    return Some((Ok(local), value));
                }
                _ => {}
            }
            if !self_closing {
                self.depth += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- <packaging>war</packaging> in a comment is not the packaging -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <parent><groupId>org.example</groupId><artifactId>parent</artifactId><version>1</version></parent>
  <groupId>org.example</groupId>
  <artifactId>lib</artifactId>
  <version>1.0</version>
  <packaging>bundle</packaging>
  <description><![CDATA[ <artifactId>not-me</artifactId> ]]></description>
  <build><plugins><plugin><artifactId>maven-jar-plugin</artifactId></plugin></plugins></build>
</project>
"#;

    #[test]
    fn reads_the_projects_own_artifact_id_and_packaging() {
        let facts = PomFacts::parse(POM.as_bytes()).unwrap();
        assert_eq!(facts.artifact_id, "lib");
        assert_eq!(facts.packaging, "bundle");
        assert_eq!(facts.main_extension(), Some("jar"));
    }

    #[test]
    fn a_release_is_its_pom_and_the_artifact_its_packaging_names() {
        let gav = Gav::release("org.example:lib", "1.0").unwrap();
        let files = release_files(&gav, POM.as_bytes()).unwrap();
        let mut path = alloc_free_path(&files.pom);
        assert_eq!(path.as_str(), "org/example/lib/1.0/lib-1.0.pom");
        path = alloc_free_path(&files.main.unwrap());
        assert_eq!(path.as_str(), "org/example/lib/1.0/lib-1.0.jar");

        let parent = "<project><artifactId>lib</artifactId><packaging>pom</packaging></project>";
        assert_eq!(release_files(&gav, parent.as_bytes()).unwrap().main, None);
        let war = "<project><artifactId>lib</artifactId><packaging> war </packaging></project>";
        let main = release_files(&gav, war.as_bytes()).unwrap().main.unwrap();
        assert_eq!(main.extension, "war");
        let plain = "<project><artifactId>lib</artifactId></project>";
        assert_eq!(
            release_files(&gav, plain.as_bytes())
                .unwrap()
                .main
                .unwrap()
                .extension,
            "jar"
        );
    }

    #[test]
    fn poms_the_log_cannot_use_are_refused() {
        let gav = Gav::release("org.example:lib", "1.0").unwrap();
        for (pom, why) in [
            (
                "<project><artifactId>other</artifactId></project>",
                PomError::OtherArtifact,
            ),
            ("<project></project>", PomError::ArtifactId),
            (
                "<project><artifactId>lib</artifactId><artifactId>lib</artifactId></project>",
                PomError::ArtifactId,
            ),
            (
                "<settings><artifactId>lib</artifactId></settings>",
                PomError::NotAPom,
            ),
            ("<project><artifactId>lib</artifactId>", PomError::NotAPom),
            (
                "<project><artifactId>lib</artifactId></project><project>",
                PomError::NotAPom,
            ),
            ("<project><!-- never closed", PomError::NotAPom),
            (
                "<project><artifactId>${name}</artifactId></project>",
                PomError::ArtifactId,
            ),
            (
                "<project><artifactId>lib</artifactId><packaging>${p}</packaging></project>",
                PomError::Packaging,
            ),
            (
                "<project><artifactId>lib</artifactId><packaging>a.asc</packaging></project>",
                PomError::Packaging,
            ),
            (
                "<project><artifactId>lib</artifactId><packaging>../x</packaging></project>",
                PomError::Packaging,
            ),
            ("PK\u{3}\u{4} a jar, not a pom", PomError::NotAPom),
        ] {
            assert_eq!(release_files(&gav, pom.as_bytes()), Err(why), "{pom}");
        }
        assert_eq!(
            PomFacts::parse(&[0xff, 0xfe]),
            Err(PomError::Unreadable),
            "not UTF-8"
        );
    }

    #[test]
    fn the_main_artifact_is_the_one_committed_output_that_is_not_the_pom() {
        use crate::digest::Digest;
        let gav = Gav::release("org.example:lib", "1.0").unwrap();
        let (pom, jar, other) = (
            Digest::sha256(b"pom"),
            Digest::sha256(b"jar"),
            Digest::sha256(b"x"),
        );
        let bytes = POM.as_bytes();
        let file = |ext| gav.with_file(None, ext);
        let both = [jar, pom];
        assert_eq!(
            committed_output(&gav, bytes, pom, &both, &file("pom")),
            Some(pom)
        );
        assert_eq!(
            committed_output(&gav, bytes, pom, &both, &file("jar")),
            Some(jar)
        );
        // Not the extension the packaging names, a classifier, another release, a pom
        // outside the commit, too many outputs.
        assert_eq!(
            committed_output(&gav, bytes, pom, &both, &file("war")),
            None
        );
        let sources = gav.with_file(Some("sources"), "jar");
        assert_eq!(committed_output(&gav, bytes, pom, &both, &sources), None);
        let other_version = Gav::release("org.example:lib", "2.0").unwrap();
        let other_jar = other_version.with_file(None, "jar");
        assert_eq!(committed_output(&gav, bytes, pom, &both, &other_jar), None);
        assert_eq!(
            committed_output(&gav, bytes, other, &both, &file("jar")),
            None
        );
        let three = [jar, pom, other];
        assert_eq!(
            committed_output(&gav, bytes, pom, &three, &file("jar")),
            None
        );
        // A pom-packaged release has no main artifact.
        let parent = "<project><artifactId>lib</artifactId><packaging>pom</packaging></project>";
        assert_eq!(
            committed_output(&gav, parent.as_bytes(), pom, &[pom], &file("jar")),
            None
        );
    }

    #[test]
    fn release_coordinates_exclude_snapshots_and_bad_names() {
        assert!(Gav::release("org.example:lib", "1.0").is_ok());
        for (name, version) in [
            ("org.example:lib", "1.0-SNAPSHOT"),
            ("org.example", "1.0"),
            ("org.example:lib:jar", "1.0"),
            ("org..example:lib", "1.0"),
            ("org.example:lib", "../1"),
            ("org/example:lib", "1.0"),
        ] {
            assert!(Gav::release(name, version).is_err(), "{name} {version}");
        }
    }

    /// The path of `gav` in a fixed buffer (the core's tests run without `alloc` too).
    fn alloc_free_path(gav: &Gav<'_>) -> heapless::String<128> {
        let mut path = heapless::String::new();
        fmt::Write::write_fmt(&mut path, format_args!("{}", gav.path())).unwrap();
        path
    }
}
