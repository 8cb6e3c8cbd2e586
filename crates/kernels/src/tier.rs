//! Which family of kernels runs on this machine: its *tier*, decided once per process from what
//! the CPU can do, or forced with `WARD_KERNEL_TIER` (refused when the CPU cannot run it).
//!
//! Each kernel asks its tier what to run through an exhaustive `match` (the quantized matmul
//! resolves its tile kernel when a matrix is loaded, the float kernels through
//! [`Tier::float_vectors`]): a new tier cannot silently fall back to the scalar loops, because
//! every such `match` stops compiling until it says what the tier runs.

use std::fmt;
use std::sync::OnceLock;

/// A family of kernels, from the plain reference up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// The reference loops: the definition every other tier is tested against.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C: 8-row tiles, `maddubs` integer products.
    Avx2,
    /// AVX2's plus AVX-512 F/BW/VL and VNNI: the integer products of the tiles by `vpdpbusd`.
    /// Its results are bit-identical to AVX2's.
    Avx512,
    /// aarch64 with NEON: GGUF's row layout, one dot product per row. The baseline every
    /// aarch64 CPU runs.
    Neon,
    /// aarch64 with NEON and the dot-product extension (`sdot`: Armv8.2's optional, Armv8.4's
    /// mandatory; Kunpeng 920, Graviton 2 and later, Ampere Altra): the x86 tiers' 8-row tiles,
    /// four products of signed bytes summed into each i32 lane by one instruction. Its results
    /// are bit-identical to AVX2's; its float kernels are NEON's.
    Dotprod,
    /// dotprod's plus the int8 matrix-multiply extension (Armv8.6; Graviton 3 and later,
    /// Neoverse N2/V1/V2): two activation rows at a time meet a tile's rows in one `smmla`
    /// (2×8 by 8×2 bytes). Bit-identical to dotprod; one activation row is dotprod's.
    I8mm,
}

/// The f32 vector code a tier runs for attention, softmax and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatVectors {
    /// Plain loops (the compiler may still vectorise them).
    Plain,
    /// 8 lanes of AVX2 + FMA + F16C.
    Avx2,
    /// AVX2's, with attention's two loops on 16 lanes of AVX-512 F: the same bits, since no
    /// lane's sum depends on the width of its vector (see `attention/rows.rs`).
    Avx512,
}

/// Tiers named for `WARD_KERNEL_TIER` that Ward has no kernels for yet: forcing one is refused
/// with this reason rather than silently running another.
const PLANNED: [(&str, &str); 1] = [("amx", "Ward has no AMX kernels yet")];

impl Tier {
    /// Every tier, in order of preference (the last one the machine has is chosen).
    pub const ALL: [Tier; 6] = [
        Tier::Scalar,
        Tier::Avx2,
        Tier::Avx512,
        Tier::Neon,
        Tier::Dotprod,
        Tier::I8mm,
    ];

    /// The name `WARD_KERNEL_TIER`, `ward bench` and `/metrics` use.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
            Tier::Neon => "neon",
            Tier::Dotprod => "dotprod",
            Tier::I8mm => "i8mm",
        }
    }

    /// The tier called `name`, or why there is none.
    pub fn from_name(name: &str) -> Result<Tier, String> {
        if let Some(tier) = Tier::ALL.into_iter().find(|t| t.name() == name) {
            return Ok(tier);
        }
        if let Some((_, why)) = PLANNED.iter().find(|(n, _)| *n == name) {
            return Err(format!("kernel tier {name:?}: {why}"));
        }
        let names: Vec<_> = Tier::ALL.iter().map(|t| t.name()).collect();
        Err(format!(
            "no kernel tier {name:?} (tiers: {})",
            names.join(", ")
        ))
    }

    /// Ok if this CPU can run the tier's kernels, else what it lacks.
    pub fn supported(self) -> Result<(), String> {
        let missing = |what: &str| Err(format!("this CPU lacks {what}"));
        match self {
            Tier::Scalar => Ok(()),
            Tier::Avx2 if x86_has(&["avx2", "fma", "f16c"]) => Ok(()),
            Tier::Avx2 => missing("AVX2, FMA or F16C"),
            Tier::Avx512
                if Tier::Avx2.supported().is_ok()
                    && x86_has(&["avx512f", "avx512bw", "avx512vl", "avx512vnni"]) =>
            {
                Ok(())
            }
            Tier::Avx512 => missing("AVX-512 F/BW/VL or VNNI"),
            Tier::Neon if cfg!(all(target_arch = "aarch64", target_endian = "little")) => Ok(()),
            Tier::Neon => Err("the NEON tier is built for little-endian aarch64 only".into()),
            Tier::Dotprod if Tier::Neon.supported().is_err() => {
                Err("the dotprod tier is built for little-endian aarch64 only".into())
            }
            Tier::Dotprod if aarch64_has_dotprod() => Ok(()),
            Tier::Dotprod => missing("the dot-product extension (sdot)"),
            Tier::I8mm if Tier::Neon.supported().is_err() => {
                Err("the i8mm tier is built for little-endian aarch64 only".into())
            }
            Tier::I8mm if Tier::Dotprod.supported().is_err() => Tier::Dotprod.supported(),
            Tier::I8mm if aarch64_has_i8mm() => Ok(()),
            Tier::I8mm => missing("the int8 matrix-multiply extension (smmla)"),
        }
    }

    /// `supported().is_ok()`, checked once per tier (kernels ask on every call).
    pub fn is_supported(self) -> bool {
        static SUPPORTED: OnceLock<[bool; Tier::ALL.len()]> = OnceLock::new();
        // `ALL` lists the tiers in declaration order, so a tier's discriminant is its index.
        SUPPORTED.get_or_init(|| Tier::ALL.map(|t| t.supported().is_ok()))[self as usize]
    }

    /// The best tier this CPU can run.
    pub fn best() -> Tier {
        Tier::ALL
            .into_iter()
            .rev()
            .find(|t| t.is_supported())
            .unwrap_or(Tier::Scalar)
    }

    /// The f32 vector code of this tier.
    pub fn float_vectors(self) -> FloatVectors {
        match self {
            Tier::Scalar | Tier::Neon | Tier::Dotprod | Tier::I8mm => FloatVectors::Plain,
            Tier::Avx2 => FloatVectors::Avx2,
            Tier::Avx512 => FloatVectors::Avx512,
        }
    }
}

/// Whether this process's f32 kernels (attention, softmax, activations) run their AVX2 code:
/// true only where the CPU has AVX2, FMA and F16C.
pub fn avx2_floats() -> bool {
    match float_vectors() {
        FloatVectors::Avx2 | FloatVectors::Avx512 => true,
        FloatVectors::Plain => false,
    }
}

/// The f32 vector code of this process's tier.
pub fn float_vectors() -> FloatVectors {
    tier().float_vectors()
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether this x86-64 CPU has every feature named (as `is_x86_feature_detected!` names them);
/// false elsewhere.
fn x86_has(features: &[&str]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        features.iter().all(|&f| match f {
            "avx2" => is_x86_feature_detected!("avx2"),
            "fma" => is_x86_feature_detected!("fma"),
            "f16c" => is_x86_feature_detected!("f16c"),
            "avx512f" => is_x86_feature_detected!("avx512f"),
            "avx512bw" => is_x86_feature_detected!("avx512bw"),
            "avx512vl" => is_x86_feature_detected!("avx512vl"),
            "avx512vnni" => is_x86_feature_detected!("avx512vnni"),
            _ => unreachable!("no check for x86 feature {f}"),
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = features;
        false
    }
}

/// Whether this aarch64 CPU has the dot-product extension (`sdot`, `udot`); false elsewhere.
fn aarch64_has_dotprod() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

/// Whether this aarch64 CPU has the int8 matrix-multiply extension (`smmla`); false elsewhere.
fn aarch64_has_i8mm() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("i8mm")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

/// The tier `WARD_KERNEL_TIER` asks for (when set), checked against this CPU; otherwise the
/// best one. `ward` calls this at start-up so that a refused tier is a clear error.
pub fn configured() -> Result<Tier, String> {
    match std::env::var("WARD_KERNEL_TIER") {
        Ok(name) => {
            let tier = Tier::from_name(name.trim())?;
            tier.supported()
                .map_err(|why| format!("WARD_KERNEL_TIER={tier}: {why}"))?;
            Ok(tier)
        }
        Err(std::env::VarError::NotPresent) => Ok(Tier::best()),
        Err(std::env::VarError::NotUnicode(_)) => Err("WARD_KERNEL_TIER is not UTF-8".into()),
    }
}

/// This process's tier, decided once.
///
/// # Panics
/// If `WARD_KERNEL_TIER` names a tier this CPU cannot run (`ward` checks [`configured`] at
/// start-up, so only a library user who skipped that check gets here).
pub fn tier() -> Tier {
    static TIER: OnceLock<Tier> = OnceLock::new();
    *TIER.get_or_init(|| configured().unwrap_or_else(|why| panic!("{why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_or_planned_tiers_are_refused() {
        for t in Tier::ALL {
            assert_eq!(Tier::from_name(t.name()), Ok(t));
        }
        assert!(Tier::from_name("amx")
            .unwrap_err()
            .contains("no AMX kernels"));
        assert!(Tier::from_name("avx9")
            .unwrap_err()
            .contains("tiers: scalar"));
    }

    /// `WARD_KERNEL_TIER` (when the test run sets it) is obeyed where the CPU has the tier and
    /// refused with the reason where it does not; `scripts/test-aarch64.sh` forces dotprod on a
    /// CPU model without it and reads the printed outcome.
    #[test]
    fn a_forced_tier_is_obeyed_or_refused() {
        let outcome = configured();
        eprintln!("configured tier: {outcome:?}");
        let Ok(name) = std::env::var("WARD_KERNEL_TIER") else {
            assert_eq!(outcome, Ok(Tier::best()));
            return;
        };
        let forced = Tier::from_name(name.trim()).expect("a known tier");
        match forced.supported() {
            Ok(()) => assert_eq!(outcome, Ok(forced)),
            Err(why) => assert!(outcome.unwrap_err().ends_with(&why)),
        }
    }

    #[test]
    fn the_best_tier_is_supported_and_scalar_always_is() {
        assert!(Tier::best().is_supported());
        assert!(Tier::Scalar.is_supported());
        // AVX-512 builds on AVX2: a machine with the one has the other.
        assert!(!Tier::Avx512.is_supported() || Tier::Avx2.is_supported());
        // So do dotprod on NEON and i8mm on dotprod.
        assert!(!Tier::Dotprod.is_supported() || Tier::Neon.is_supported());
        assert!(!Tier::I8mm.is_supported() || Tier::Dotprod.is_supported());
        assert_eq!(
            Tier::Neon.is_supported(),
            cfg!(all(target_arch = "aarch64", target_endian = "little"))
        );
    }
}
