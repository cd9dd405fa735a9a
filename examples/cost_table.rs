//! Prints the cost model of every level (`fade::cost`) as the Markdown table
//! of docs/PERFORMANCE.md: multiply-adds per byte coded, part by part.
//!
//! `cargo run --release --example cost_table`

fn main() -> fade::Result<()> {
    let names = fade::Preset::builtin_names();
    let costs: Vec<fade::cost::Cost> = names
        .iter()
        .map(|n| fade::Preset::load(n).map(|p| fade::cost::of(&p)))
        .collect::<fade::Result<_>>()?;
    println!(
        "| part (multiply-adds per byte, forward + backward) | {} |",
        names.join(" | ")
    );
    println!("|---|{}", "---:|".repeat(names.len()));
    for (i, part) in costs[0].parts.iter().enumerate() {
        let cells: Vec<String> = costs
            .iter()
            .map(|c| {
                c.parts
                    .get(i)
                    .map_or("-".into(), |p| thousands(p.forward + p.backward))
            })
            .collect();
        println!("| {} | {} |", part.name, cells.join(" | "));
    }
    let row = |name: &str, f: &dyn Fn(&fade::cost::Cost) -> f64| {
        let cells: Vec<String> = costs.iter().map(|c| thousands(f(c))).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row("**network, multiply-adds**", &|c| c.network_madds());
    row("optimizer, flops (params x 14 / lanes)", &|c| {
        c.optimizer_flops
    });
    row("**total flops per byte**", &|c| c.flops());
    row("parameters", &|c| c.params);
    row("side-table lookups per byte", &|c| c.side_lookups);
    row("exps per byte", &|c| c.exps);
    Ok(())
}

/// `n` rounded, with thousands separators.
fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
