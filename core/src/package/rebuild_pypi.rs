//! What `pypi-rebuild/v1` decides before and around the build, sans IO (issue 16): which of a
//! release's files are rebuilt from which ([`rebuild_target`]), which build backend the wheel
//! names and how its requirement is pinned ([`backend_pin`], [`pin_requirements`]), and the
//! `SOURCE_DATE_EPOCH` a wheel's entry times give ([`zip_time_to_unix`]). The runtime reads
//! the files, fetches the requirements through the node's own mirror and runs the build in a
//! sandbox; honest rebuilders deciding the same way attest the same recipe.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{DistFile, ProjectName, SdistFormat};

/// The build requirements PEP 517 assumes for an sdist without a `[build-system]` table.
pub const LEGACY_REQUIREMENTS: [&str; 2] = ["setuptools>=40.8.0", "wheel"];

/// Whether a wheel declares no compiled code: Python tag `py3` or `py2.py3`, ABI `none`,
/// platform `any`. Only those are rebuilt (a compiled wheel depends on the build machine).
pub fn is_pure_wheel(file: &DistFile<'_>) -> bool {
    matches!(file, DistFile::Wheel { python, abi, platform, .. }
        if matches!(*python, "py3" | "py2.py3") && *abi == "none" && *platform == "any")
}

/// The files a rebuild of a release compares: its sdist (a `.tar.gz` before a `.zip`) and its
/// first pure wheel by file name. `None` when the release has no pure wheel; `Some((None,
/// wheel))` when it has one but no sdist (nothing to rebuild from).
pub fn rebuild_target<'f>(
    project: &ProjectName<'_>,
    filenames: impl IntoIterator<Item = &'f str>,
) -> Option<(Option<&'f str>, &'f str)> {
    let mut wheel: Option<&str> = None;
    let mut sdist: Option<(bool, &str)> = None;
    for name in filenames {
        match DistFile::parse_for(project, name) {
            Ok(file @ DistFile::Wheel { .. })
                if is_pure_wheel(&file) && wheel.is_none_or(|w| name < w) =>
            {
                wheel = Some(name);
            }
            Ok(DistFile::Sdist { format, .. }) => {
                let zip = format != SdistFormat::TarGz;
                if sdist.is_none_or(|(z, s)| (zip, name) < (z, s)) {
                    sdist = Some((zip, name));
                }
            }
            _ => {}
        }
    }
    wheel.map(|w| (sdist.map(|(_, s)| s), w))
}

/// The build backend a wheel's `WHEEL` file names in its `Generator:` line, as a project and
/// the exact version to pin: `flit 3.9.0` → `flit_core` 3.9.0, `hatchling 1.25.0`,
/// `setuptools (75.3.0)`, `bdist_wheel (0.41.2)` → `wheel` 0.41.2, `poetry-core 1.9.0`,
/// `pdm-backend (2.1.0)`. `None` for a generator this builder does not know.
pub fn backend_pin(wheel_metadata: &str) -> Option<(&'static str, String)> {
    let generator = wheel_metadata
        .lines()
        .find_map(|line| line.strip_prefix("Generator:"))?
        .trim();
    let (tool, version) = generator.split_once(' ')?;
    let version = version.trim().trim_start_matches('(').trim_end_matches(')');
    let project = match tool {
        "flit" => "flit_core",
        "hatchling" | "hatch" => "hatchling",
        "setuptools" => "setuptools",
        "bdist_wheel" => "wheel",
        "poetry-core" | "poetry" => "poetry-core",
        "pdm-backend" => "pdm-backend",
        _ => return None,
    };
    let plain = !version.is_empty()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'+' || b == b'!');
    plain.then(|| (project, version.to_string()))
}

/// The requirement's project name (before any extra, specifier or marker).
fn requirement_name(requirement: &str) -> &str {
    let end = requirement
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(requirement.len());
    requirement[..end].trim()
}

/// The sdist's build requirements with the backend pinned: a requirement on `pin`'s project
/// (by normalised name) becomes `project==version`, and is added when the sdist does not
/// name it. Sorted, so every rebuilder passes the same list.
pub fn pin_requirements(requires: &[String], pin: &(&str, String)) -> Vec<String> {
    let same = |name: &str| match (ProjectName::parse(name), ProjectName::parse(pin.0)) {
        (Ok(a), Ok(b)) => a.same_project(&b),
        _ => false,
    };
    let mut out: Vec<String> = requires
        .iter()
        .filter(|r| !same(requirement_name(r)))
        .cloned()
        .collect();
    out.push(alloc::format!("{}=={}", pin.0, pin.1));
    out.sort();
    out.dedup();
    out
}

/// Unix seconds of a zip entry's time (read as UTC, as reproducible builders write
/// `SOURCE_DATE_EPOCH`); `None` for an impossible date.
pub fn zip_time_to_unix(
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
) -> Option<u64> {
    if !(1970..=2107).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), for the proleptic Gregorian calendar.
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn the_first_pure_wheel_is_rebuilt_from_the_tar_gz_sdist() {
        let project = ProjectName::parse("demo").unwrap();
        let files = [
            "demo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
            "demo-1.0.zip",
            "demo-1.0-py3-none-any.whl",
            "demo-1.0.tar.gz",
            "other-1.0-py3-none-any.whl",
        ];
        assert_eq!(
            rebuild_target(&project, files),
            Some((Some("demo-1.0.tar.gz"), "demo-1.0-py3-none-any.whl"))
        );
        assert_eq!(
            rebuild_target(&project, ["demo-1.0-py2.py3-none-any.whl"]),
            Some((None, "demo-1.0-py2.py3-none-any.whl"))
        );
        assert_eq!(
            rebuild_target(&project, ["demo-1.0-cp312-abi3-any.whl", "demo-1.0.tar.gz"]),
            None
        );
    }

    #[test]
    fn the_generator_pins_the_backend_the_sdist_asks_for() {
        let wheel = "Wheel-Version: 1.0\nGenerator: flit 3.9.0\nRoot-Is-Purelib: true\n";
        let pin = backend_pin(wheel).unwrap();
        assert_eq!(pin, ("flit_core", "3.9.0".into()));
        assert_eq!(
            backend_pin("Generator: bdist_wheel (0.41.2)\n").unwrap(),
            ("wheel", "0.41.2".into())
        );
        assert_eq!(backend_pin("Generator: mystery 1.0\n"), None);
        assert_eq!(backend_pin("Generator: flit 1.0; rm -rf /\n"), None);
        let requires = vec![
            "flit_core >=3.2,<4".into(),
            "tomli; python_version<'3.11'".into(),
        ];
        assert_eq!(
            pin_requirements(&requires, &pin),
            vec!["flit_core==3.9.0", "tomli; python_version<'3.11'"]
        );
        assert_eq!(
            pin_requirements(&[String::from("Flit-Core")], &pin),
            vec!["flit_core==3.9.0"]
        );
    }

    #[test]
    fn zip_times_read_as_utc() {
        assert_eq!(zip_time_to_unix(1980, 1, 1, 0, 0, 0), Some(315_532_800));
        assert_eq!(
            zip_time_to_unix(2024, 2, 29, 12, 30, 10),
            Some(1_709_209_810)
        );
        assert_eq!(zip_time_to_unix(2024, 13, 1, 0, 0, 0), None);
    }
}
