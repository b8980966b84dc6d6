//! The hardware catalog: GPUs, NICs, switches and PCIe generations, with a source for every figure.
//!
//! The data lives in `data/catalog.toml` (embedded at compile time); this module turns it into SI units once
//! and answers lookups by slug or alias.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::TopologyError;

/// The catalog text, as shipped.
pub const CATALOG_TOML: &str = include_str!("../data/catalog.toml");

/// Numeric precision of a tensor-core operation, for [`GpuSpec::peak_flops_per_s`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE single precision on the CUDA cores.
    Fp32,
    /// TensorFloat-32 on the tensor cores.
    Tf32,
    /// bfloat16.
    Bf16,
    /// IEEE half precision.
    Fp16,
    /// 8-bit floating point (E4M3/E5M2), Hopper and later.
    Fp8,
}

/// One GPU model, in SI units. Throughputs are dense (no 2:4 sparsity) peaks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuSpec {
    /// Catalog key, e.g. `h100-sxm-80gb`.
    pub slug: String,
    /// Product name.
    pub name: String,
    /// Other names accepted on lookup, e.g. `h100`.
    pub aliases: Vec<String>,
    /// Architecture family, e.g. `hopper`.
    pub architecture: String,
    /// Dense BF16 tensor peak, FLOP/s (`None` where the GPU has no BF16 tensor cores).
    pub bf16_flops_per_s: Option<f64>,
    /// Dense FP16 tensor peak, FLOP/s.
    pub fp16_flops_per_s: f64,
    /// Dense FP8 tensor peak, FLOP/s (`None` before Hopper).
    pub fp8_flops_per_s: Option<f64>,
    /// Dense TF32 tensor peak, FLOP/s (`None` before Ampere).
    pub tf32_flops_per_s: Option<f64>,
    /// FP32 (non-tensor) peak, FLOP/s.
    pub fp32_flops_per_s: f64,
    /// HBM capacity in bytes (NVIDIA's decimal GB × 10⁹).
    pub hbm_bytes: f64,
    /// HBM bandwidth, bytes/s.
    pub hbm_bytes_per_s: f64,
    /// NVLink generation (2 = Volta … 5 = Blackwell).
    pub nvlink_generation: u8,
    /// NVLink bandwidth per GPU in one direction, bytes/s.
    pub nvlink_bytes_per_s: f64,
    /// GPU-to-GPU latency across NVLink/NVSwitch, seconds.
    pub nvlink_latency_s: f64,
    /// Whether the NVSwitch generation paired with this GPU reduces in the switch (NVLink SHARP, "NVLS").
    pub nvls: bool,
    /// PCIe generation of the host interface.
    pub pcie_gen: u8,
    /// Where the figures come from.
    pub source: String,
    /// Assumptions and figures taken from elsewhere.
    pub notes: String,
}

impl GpuSpec {
    /// Dense peak for a precision, FLOP/s; `None` where the GPU does not support it.
    pub fn peak_flops_per_s(&self, precision: Precision) -> Option<f64> {
        match precision {
            Precision::Fp32 => Some(self.fp32_flops_per_s),
            Precision::Tf32 => self.tf32_flops_per_s,
            Precision::Bf16 => self.bf16_flops_per_s,
            Precision::Fp16 => Some(self.fp16_flops_per_s),
            Precision::Fp8 => self.fp8_flops_per_s,
        }
    }
}

/// One network adapter model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NicSpec {
    /// Catalog key, e.g. `cx7-ndr`.
    pub slug: String,
    /// Product name.
    pub name: String,
    /// Other names accepted on lookup, e.g. `400g`.
    pub aliases: Vec<String>,
    /// Line rate per direction, bytes/s.
    pub bandwidth_bytes_per_s: f64,
    /// Adapter latency (one end), seconds.
    pub latency_s: f64,
    /// Where the figures come from.
    pub source: String,
    /// Assumptions.
    pub notes: String,
}

/// One switch model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwitchSpec {
    /// Catalog key, e.g. `qm9700`.
    pub slug: String,
    /// Product name.
    pub name: String,
    /// Other names accepted on lookup.
    pub aliases: Vec<String>,
    /// Number of ports.
    pub radix: u32,
    /// Port rate per direction, bytes/s.
    pub port_bytes_per_s: f64,
    /// Port-to-port latency, seconds.
    pub latency_s: f64,
    /// Where the figures come from.
    pub source: String,
    /// Assumptions.
    pub notes: String,
}

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catalog {
    /// GPU models, in file order.
    pub gpus: Vec<GpuSpec>,
    /// NIC models, in file order.
    pub nics: Vec<NicSpec>,
    /// Switch models, in file order.
    pub switches: Vec<SwitchSpec>,
    /// PCIe x16 bandwidth per direction by generation: `(gen, bytes/s)`.
    pub pcie_x16_bytes_per_s: Vec<(u8, f64)>,
}

/// The embedded catalog, parsed once.
pub fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG
        .get_or_init(|| parse_catalog(CATALOG_TOML).expect("data/catalog.toml is valid (checked by a test)"))
}

/// Finds an entry of `all` by slug or alias (case-insensitive; `names` gives an entry's slug and aliases);
/// the error lists the known slugs.
fn lookup<'a, T>(
    all: &'a [T],
    kind: &'static str,
    name: &str,
    names: impl Fn(&T) -> (&str, &[String]),
) -> Result<&'a T, TopologyError> {
    all.iter().find(|e| matches(name, names(e).0, names(e).1)).ok_or_else(|| TopologyError::UnknownHardware {
        kind,
        name: name.to_owned(),
        known: join(all.iter().map(|e| names(e).0)),
    })
}

/// Looks up a GPU by slug or alias (case-insensitive).
pub fn gpu(name: &str) -> Result<&'static GpuSpec, TopologyError> {
    lookup(&catalog().gpus, "GPU", name, |g| (&g.slug, &g.aliases))
}

/// Looks up a NIC by slug or alias (case-insensitive).
pub fn nic(name: &str) -> Result<&'static NicSpec, TopologyError> {
    lookup(&catalog().nics, "NIC", name, |n| (&n.slug, &n.aliases))
}

/// Looks up a switch by slug or alias (case-insensitive).
pub fn switch(name: &str) -> Result<&'static SwitchSpec, TopologyError> {
    lookup(&catalog().switches, "switch", name, |w| (&w.slug, &w.aliases))
}

/// PCIe x16 bandwidth per direction for a generation, bytes/s.
pub fn pcie_x16_bytes_per_s(gen_number: u8) -> Option<f64> {
    catalog().pcie_x16_bytes_per_s.iter().find(|(g, _)| *g == gen_number).map(|(_, b)| *b)
}

fn matches(name: &str, slug: &str, aliases: &[String]) -> bool {
    slug.eq_ignore_ascii_case(name) || aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
}

fn join<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    gpu: Vec<RawGpu>,
    nic: Vec<RawNic>,
    switch: Vec<RawSwitch>,
    pcie: Vec<RawPcie>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGpu {
    slug: String,
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    architecture: String,
    bf16_tflops: Option<f64>,
    fp16_tflops: f64,
    fp8_tflops: Option<f64>,
    tf32_tflops: Option<f64>,
    fp32_tflops: f64,
    hbm_gb: f64,
    hbm_gbytes_per_s: f64,
    nvlink_generation: u8,
    nvlink_gbytes_per_s: f64,
    nvlink_latency_ns: f64,
    nvls: bool,
    pcie_gen: u8,
    source: String,
    #[serde(default)]
    notes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNic {
    slug: String,
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    gbps: f64,
    latency_ns: f64,
    source: String,
    #[serde(default)]
    notes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSwitch {
    slug: String,
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    radix: u32,
    port_gbps: f64,
    latency_ns: f64,
    source: String,
    #[serde(default)]
    notes: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPcie {
    #[serde(rename = "gen")]
    generation: u8,
    x16_gbytes_per_s: f64,
    #[allow(dead_code, reason = "provenance is kept in the data file; nothing reads it at run time")]
    source: String,
}

const TERA: f64 = 1e12;
const GIGA: f64 = 1e9;
const NANO: f64 = 1e-9;

/// Parses catalog text (the embedded one, or a candidate in a test).
pub fn parse_catalog(text: &str) -> Result<Catalog, TopologyError> {
    let raw: RawCatalog = toml::from_str(text)
        .map_err(|e| TopologyError::Syntax { origin: "catalog.toml".to_owned(), message: e.to_string() })?;
    let gpus = raw
        .gpu
        .into_iter()
        .map(|g| GpuSpec {
            slug: g.slug,
            name: g.name,
            aliases: g.aliases,
            architecture: g.architecture,
            bf16_flops_per_s: g.bf16_tflops.map(|t| t * TERA),
            fp16_flops_per_s: g.fp16_tflops * TERA,
            fp8_flops_per_s: g.fp8_tflops.map(|t| t * TERA),
            tf32_flops_per_s: g.tf32_tflops.map(|t| t * TERA),
            fp32_flops_per_s: g.fp32_tflops * TERA,
            hbm_bytes: g.hbm_gb * GIGA,
            hbm_bytes_per_s: g.hbm_gbytes_per_s * GIGA,
            nvlink_generation: g.nvlink_generation,
            nvlink_bytes_per_s: g.nvlink_gbytes_per_s * GIGA,
            nvlink_latency_s: g.nvlink_latency_ns * NANO,
            nvls: g.nvls,
            pcie_gen: g.pcie_gen,
            source: g.source,
            notes: g.notes,
        })
        .collect();
    let nics = raw
        .nic
        .into_iter()
        .map(|n| NicSpec {
            slug: n.slug,
            name: n.name,
            aliases: n.aliases,
            bandwidth_bytes_per_s: n.gbps * GIGA / 8.0,
            latency_s: n.latency_ns * NANO,
            source: n.source,
            notes: n.notes,
        })
        .collect();
    let switches = raw
        .switch
        .into_iter()
        .map(|s| SwitchSpec {
            slug: s.slug,
            name: s.name,
            aliases: s.aliases,
            radix: s.radix,
            port_bytes_per_s: s.port_gbps * GIGA / 8.0,
            latency_s: s.latency_ns * NANO,
            source: s.source,
            notes: s.notes,
        })
        .collect();
    let pcie_x16_bytes_per_s =
        raw.pcie.into_iter().map(|p| (p.generation, p.x16_gbytes_per_s * GIGA)).collect();
    Ok(Catalog { gpus, nics, switches, pcie_x16_bytes_per_s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_parses_and_every_entry_has_a_source() {
        let c = catalog();
        assert_eq!(c.gpus.len(), 8);
        for g in &c.gpus {
            assert!(!g.source.is_empty(), "{} has no source", g.slug);
            assert!(
                g.fp16_flops_per_s > 0.0 && g.hbm_bytes > 0.0 && g.nvlink_bytes_per_s > 0.0,
                "{}",
                g.slug
            );
        }
        assert!(c.nics.iter().all(|n| !n.source.is_empty()));
        assert!(c.switches.iter().all(|s| !s.source.is_empty() && s.radix > 0));
    }

    #[test]
    fn slugs_of_the_validation_set_resolve() {
        // The gpu slugs used by /work/shared/validation/public.toml.
        for slug in [
            "v100-sxm-32gb",
            "a100-sxm-40gb",
            "a100-sxm-80gb",
            "a100-pcie-80gb",
            "h100-sxm-80gb",
            "h200-sxm-141gb",
            "b200",
            "gb200",
        ] {
            assert_eq!(gpu(slug).unwrap().slug, slug);
        }
    }

    #[test]
    fn aliases_and_units() {
        let h100 = gpu("H100").unwrap();
        assert_eq!(h100.slug, "h100-sxm-80gb");
        assert_eq!(h100.peak_flops_per_s(Precision::Bf16), Some(989.4e12));
        assert_eq!(h100.peak_flops_per_s(Precision::Fp8), Some(1978.9e12));
        assert_eq!(h100.nvlink_bytes_per_s, 450e9);
        assert_eq!(gpu("a100").unwrap().slug, "a100-sxm-80gb");
        assert_eq!(gpu("v100").unwrap().peak_flops_per_s(Precision::Bf16), None);
        assert_eq!(nic("400g").unwrap().bandwidth_bytes_per_s, 50e9);
        assert_eq!(switch("qm9700").unwrap().radix, 64);
        assert_eq!(pcie_x16_bytes_per_s(5), Some(63e9));
    }

    #[test]
    fn unknown_gpu_names_the_value_and_the_choices() {
        let err = gpu("h900").unwrap_err().to_string();
        assert!(err.contains("\"h900\"") && err.contains("h100-sxm-80gb"), "{err}");
    }
}
