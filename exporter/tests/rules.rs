//! The rule bundle in `alerts/`: the committed rule file is what `egressor rules` generates
//! from the committed values (which are the defaults), every alert's runbook anchor exists,
//! and Prometheus' own `promtool` accepts the rules and passes their unit tests.

use std::{path::Path, process::Command};

use egressor::rules::{Values, render};

fn alerts_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../alerts"))
}

#[test]
fn committed_rules_are_generated_from_the_committed_values() {
    let values = Values::load(&alerts_dir().join("values.yaml")).unwrap();
    assert_eq!(values, Values::default(), "alerts/values.yaml documents the defaults");
    let committed = std::fs::read_to_string(alerts_dir().join("egressor.rules.yml")).unwrap();
    assert!(
        committed == render(&values),
        "alerts/egressor.rules.yml is stale: run `egressor rules --values alerts/values.yaml \
         > alerts/egressor.rules.yml`"
    );
}

#[test]
fn every_alert_has_its_runbook_section() {
    let rules = std::fs::read_to_string(alerts_dir().join("egressor.rules.yml")).unwrap();
    let runbook = std::fs::read_to_string(alerts_dir().join("runbook.md")).unwrap();
    let alerts: Vec<&str> =
        rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert!(alerts.len() >= 6, "{alerts:?}");
    for alert in alerts {
        assert!(runbook.contains(&format!("\n## {alert}\n")), "runbook.md lacks ## {alert}");
        let anchor = format!("runbook.md#{}", alert.to_lowercase());
        assert!(rules.contains(&anchor), "{alert}: runbook_url {anchor}");
    }
}

/// Runs promtool with `args` in alerts/; `None` when promtool is missing outside CI.
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool").args(args).current_dir(alerts_dir()).output() {
        Ok(out) => Some(out),
        Err(e) if std::env::var("EGRESSOR_REQUIRE_BPF").as_deref() != Ok("1") => {
            eprintln!("SKIPPED: promtool not runnable ({e}); apt-get install prometheus");
            None
        }
        Err(e) => panic!("promtool: {e} (scripts/setup.sh installs it)"),
    }
}

#[test]
fn budget_alerts_generated_from_their_values_pass_their_unit_tests() {
    let values = Values::load(&alerts_dir().join("tests/budget.values.yaml")).unwrap();
    let dir = std::env::temp_dir().join(format!("egressor-budget-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("budget.rules.yml"), render(&values)).unwrap();
    std::fs::copy(alerts_dir().join("tests/budget.test.yml"), dir.join("budget.test.yml")).unwrap();
    let out = promtool(&["test", "rules", dir.join("budget.test.yml").to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    let Some(out) = out else { return };
    assert_success(&["test", "rules", "budget.test.yml"], &out);
}

/// The unit-test files of the committed rules; each runs in its own promtool, in parallel.
const TEST_FILES: [&str; 3] =
    ["tests/egressor.test.yml", "tests/slow_burn.test.yml", "tests/seasonal.test.yml"];

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let Some(out) = promtool(&["check", "rules", "egressor.rules.yml"]) else { return };
    assert_success(&["check", "rules"], &out);
    let runs: Vec<_> = TEST_FILES
        .iter()
        .map(|file| std::thread::spawn(move || (file, promtool(&["test", "rules", file]))))
        .collect();
    for run in runs {
        let (file, out) = run.join().unwrap();
        assert_success(&["test", "rules", file], &out.expect("promtool ran once already"));
    }
}

fn assert_success(args: &[&str], out: &std::process::Output) {
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("SUCCESS"), "promtool {args:?}: {text}");
}
