//! Parses every deployment template under `deploy/` and checks that its parts agree: manifests are valid
//! YAML with the fields Kubernetes requires, probes hit declared ports, the token comes from the secret that
//! exists, the worker count matches `CHOIR_NNODES`, and the embedded job fits the workers' GPUs.

use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn k8s_docs() -> Vec<(String, Value)> {
    let mut docs = vec![];
    let mut files: Vec<_> =
        std::fs::read_dir(deploy_dir().join("k8s")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            docs.push((path.display().to_string(), value));
        }
    }
    docs
}

use serde::Deserialize;

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    &docs
        .iter()
        .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .1
}

fn env_of<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"].as_sequence()?.iter().find(|e| e["name"] == name)?["value"].as_str()
}

#[test]
fn every_manifest_parses_with_the_required_fields() {
    let docs = k8s_docs();
    assert!(
        docs.len() >= 6,
        "expected secret, configmap, deployment, 2 services, statefulset; got {}",
        docs.len()
    );
    for (file, d) in &docs {
        for key in ["apiVersion", "kind"] {
            assert!(d[key].as_str().is_some_and(|s| !s.is_empty()), "{file}: {key} missing");
        }
        assert!(d["metadata"]["name"].as_str().is_some(), "{file}: metadata.name missing");
    }
}

#[test]
fn probes_ports_secrets_and_counts_agree() {
    let docs = k8s_docs();
    let secret = find(&docs, "Secret", "choir-token");
    assert!(secret["stringData"]["CHOIR_TOKEN"].as_str().is_some());
    let deployment = find(&docs, "Deployment", "choir-coordinator");
    let statefulset = find(&docs, "StatefulSet", "choir-worker");
    for workload in [deployment, statefulset] {
        let spec = &workload["spec"];
        assert_eq!(
            spec["selector"]["matchLabels"]["app.kubernetes.io/name"],
            spec["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        );
        for c in spec["template"]["spec"]["containers"].as_sequence().unwrap() {
            let ports: Vec<i64> = c["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|p| p["containerPort"].as_i64().unwrap())
                .collect();
            for probe in ["readinessProbe", "livenessProbe"] {
                let port = c[probe]["grpc"]["port"]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{probe} is not a gRPC probe"));
                assert!(ports.contains(&port), "{probe} port {port} not in {ports:?}");
            }
            let secrets: Vec<&str> = c["envFrom"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter_map(|e| e["secretRef"]["name"].as_str())
                .collect();
            assert_eq!(secrets, ["choir-token"]);
        }
    }
    let coord = &deployment["spec"]["template"]["spec"]["containers"][0];
    let worker = &statefulset["spec"]["template"]["spec"]["containers"][0];
    let nnodes: i64 = env_of(coord, "CHOIR_NNODES").unwrap().parse().unwrap();
    assert_eq!(statefulset["spec"]["replicas"].as_i64(), Some(nnodes), "replicas must equal CHOIR_NNODES");
    let headless = find(&docs, "Service", statefulset["spec"]["serviceName"].as_str().unwrap());
    assert_eq!(headless["spec"]["clusterIP"], "None");
    let service = find(&docs, "Service", "choir-coordinator");
    let url = env_of(worker, "CHOIR_COORDINATOR").unwrap();
    assert!(url.contains(service["metadata"]["name"].as_str().unwrap()), "{url}");
    let gpus: u32 = env_of(worker, "CHOIR_GPUS").unwrap().parse().unwrap();
    let job_text = find(&docs, "ConfigMap", "choir-job")["data"]["job.toml"].as_str().unwrap();
    let job = coordinator::parse(job_text).unwrap();
    let p = &job.plan;
    assert_eq!(p.tp * p.pp * p.dp * p.cp, nnodes as u32 * gpus, "the job's ranks must equal workers × GPUs");
    assert_eq!(env_of(coord, "CHOIR_JOB"), Some("/etc/choir/job.toml"));
    // Checkpoints: the coordinator and every worker mount the same RWX claim at CHOIR_CHECKPOINT_DIR.
    let dir = env_of(coord, "CHOIR_CHECKPOINT_DIR").expect("the coordinator names its checkpoint directory");
    let claim = find(&docs, "PersistentVolumeClaim", "choir-checkpoints");
    assert_eq!(claim["spec"]["accessModes"][0], "ReadWriteMany");
    for workload in [deployment, statefulset] {
        let pod = &workload["spec"]["template"]["spec"];
        let volume = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["persistentVolumeClaim"]["claimName"] == "choir-checkpoints")
            .expect("a volume from the checkpoint claim");
        let mounted = pod["containers"][0]["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|m| m["name"] == volume["name"] && m["mountPath"].as_str() == Some(dir));
        assert!(mounted, "the checkpoint volume must be mounted at {dir}");
    }
}

#[test]
fn systemd_units_and_env_files_are_well_formed() {
    let dir = deploy_dir().join("systemd");
    for unit in ["choir-coordinator.service", "choir-worker.service"] {
        let text = std::fs::read_to_string(dir.join(unit)).unwrap();
        for section in ["[Unit]", "[Service]", "[Install]"] {
            assert!(text.contains(section), "{unit}: no {section}");
        }
        let exec = text.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        assert!(exec.starts_with("ExecStart=/usr/local/bin/choir "), "{exec}");
        let env = text.lines().find_map(|l| l.strip_prefix("EnvironmentFile=")).unwrap();
        let env_name = Path::new(env).file_name().unwrap();
        let env_text = std::fs::read_to_string(dir.join(env_name)).unwrap();
        for line in env_text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
            let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{line}: not KEY=VALUE"));
            assert!(key.starts_with("CHOIR_") && !value.is_empty(), "{line}");
        }
    }
    let sbatch = std::fs::read_to_string(deploy_dir().join("slurm/choir.sbatch")).unwrap();
    assert!(sbatch.starts_with("#!/bin/bash"));
    assert!(sbatch.contains("srun") && sbatch.contains(" coordinator ") && sbatch.contains(" worker "));
}
