//! The operator's planning tool, as operators run it.

use std::process::Command;

#[test]
fn layout_simulate_plans_a_thousand_nodes_within_bounds() {
    let out = Command::new(cairn_tests::bin("cairn"))
        .args([
            "layout", "simulate", "--nodes", "1000", "--zones", "10", "--json",
        ])
        .output()
        .expect("running cairn");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{v}");
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(
        f("balance_min_ratio") >= 0.95 && f("balance_max_ratio") <= 1.05,
        "{v}"
    );
    assert!(f("movement_add_ratio") <= 1.2, "{v}");
    assert!(f("movement_remove_ratio") <= 1.2, "{v}");
    assert_eq!(v["max_shards_per_zone"].as_u64(), Some(1), "{v}");
}
