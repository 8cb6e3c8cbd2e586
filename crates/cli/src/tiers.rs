//! `ward tiers`: the CPU kernel tiers, which this machine can run and which one Ward uses
//! (the best, or the one `WARD_KERNEL_TIER` forces). CI prints it beside the test results, to
//! show which tiers the kernel tests exercised.

use ward_kernels::tier::{tier, Tier};

pub fn tiers() -> anyhow::Result<()> {
    let chosen = tier();
    for t in Tier::ALL {
        let state = match t.supported() {
            Ok(()) if t == chosen => "runs here (in use)".to_string(),
            Ok(()) => "runs here".to_string(),
            Err(why) => format!("skipped: {why}"),
        };
        println!("{:<8} {state}", t.name());
    }
    Ok(())
}
