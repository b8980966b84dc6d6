use super::*;

fn meta(rank: u32, step: u32) -> ShardMeta {
    ShardMeta {
        job_id: "job".into(),
        fingerprint: "fp".into(),
        rank,
        step,
        digest: 0x1234_5678_9abc_def0 ^ u64::from(rank) ^ (u64::from(step) << 32),
    }
}

/// Writes and commits a checkpoint of `world` ranks at `step`.
fn checkpoint(store: &Store, step: u32, world: u32) -> Manifest {
    let shards =
        (0..world).map(|r| store.write_shard(&meta(r, step), 1000 + u64::from(r)).unwrap()).collect();
    let m = Manifest {
        format: MANIFEST_FORMAT.into(),
        job_id: "job".into(),
        fingerprint: "fp".into(),
        step,
        world,
        shards,
    };
    store.commit(&m).unwrap();
    m
}

#[test]
fn a_committed_checkpoint_verifies_and_its_shards_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("ckpt")).unwrap();
    let m = checkpoint(&store, 5, 3);
    assert_eq!(store.latest(), Some(5));
    assert_eq!(store.committed_steps(), vec![5]);
    assert_eq!(store.verify(5, "fp", 3).unwrap(), m);
    for r in 0..3 {
        assert_eq!(store.read_shard(5, r).unwrap(), meta(r, 5));
    }
    assert!(dir.path().join("ckpt/step-00000005/manifest.json").is_file());
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(store.step_dir(5))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn shard_bytes_are_a_function_of_the_state() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ra = Store::open(a.path()).unwrap().write_shard(&meta(1, 2), 4096).unwrap();
    let rb = Store::open(b.path()).unwrap().write_shard(&meta(1, 2), 4096).unwrap();
    assert_eq!(ra, rb);
    let mut other = meta(1, 2);
    other.digest ^= 1;
    let rc = Store::open(b.path()).unwrap().write_shard(&other, 4096).unwrap();
    assert_ne!(ra.sha256, rc.sha256);
}

#[test]
fn a_corrupt_checkpoint_is_caught_by_checksum_and_the_previous_one_restores() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    checkpoint(&store, 5, 2);
    let ten = checkpoint(&store, 10, 2);
    assert_eq!(store.find_restorable("fp", 2).manifest, Some(ten));
    let file = store.corrupt(10).unwrap();
    let err = store.verify(10, "fp", 2).unwrap_err();
    assert!(matches!(err, CheckpointError::Corrupt { ref path, .. } if *path == file), "{err}");
    assert!(err.to_string().contains("SHA-256"), "{err}");
    let found = store.find_restorable("fp", 2);
    assert_eq!(found.manifest.map(|m| m.step), Some(5));
    assert_eq!(found.skipped.len(), 1);
    assert_eq!(found.skipped[0].0, 10);
}

#[test]
fn a_torn_checkpoint_without_manifest_is_not_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    checkpoint(&store, 5, 2);
    // Step 10: rank 0 finished its shard, rank 1 died half-way, nobody committed.
    store.write_shard(&meta(0, 10), 1000).unwrap();
    store.write_torn_shard(&meta(1, 10), 1000).unwrap();
    assert!(store.step_dir(10).join("rank-00001.shard.tmp").is_file());
    assert_eq!(store.committed_steps(), vec![5]);
    assert_eq!(store.latest(), Some(5));
    assert_eq!(store.find_restorable("fp", 2).manifest.map(|m| m.step), Some(5));
    // Rolling back to 5 removes the torn directory.
    assert_eq!(store.discard_after(Some(5)).unwrap(), vec![10]);
    assert!(!store.step_dir(10).exists());
}

#[test]
fn a_commit_refuses_missing_or_resized_shards() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let shard = store.write_shard(&meta(0, 3), 100).unwrap();
    let mut m = Manifest {
        format: MANIFEST_FORMAT.into(),
        job_id: "job".into(),
        fingerprint: "fp".into(),
        step: 3,
        world: 2,
        shards: vec![shard.clone()],
    };
    assert!(store.commit(&m).is_err(), "a missing rank must not commit");
    m.world = 1;
    m.shards[0].bytes += 1;
    let err = store.commit(&m).unwrap_err();
    assert!(err.to_string().contains("rank-00000.shard"), "{err}");
    assert_eq!(store.committed_steps(), Vec::<u32>::new());
    assert_eq!(store.latest(), None);
}

#[test]
fn retention_keeps_the_newest_k_and_drops_stale_torn_directories() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for step in [2, 4, 6, 8] {
        checkpoint(&store, step, 1);
    }
    store.write_torn_shard(&meta(0, 5), 10).unwrap();
    store.write_torn_shard(&meta(0, 9), 10).unwrap();
    let removed = store.prune(2).unwrap();
    assert_eq!(removed, vec![2, 4, 5]);
    assert_eq!(store.committed_steps(), vec![6, 8]);
    // A torn directory newer than the newest commit may be a checkpoint in progress: kept.
    assert!(store.step_dir(9).exists());
    assert_eq!(store.prune(0).unwrap(), vec![6], "keep is at least one");
}

#[test]
fn a_checkpoint_of_another_job_or_world_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    checkpoint(&store, 4, 2);
    assert!(matches!(store.verify(4, "other", 2), Err(CheckpointError::Mismatch { .. })));
    assert!(matches!(store.verify(4, "fp", 3), Err(CheckpointError::Mismatch { .. })));
    let found = store.find_restorable("other", 2);
    assert_eq!(found.manifest, None);
    assert_eq!(found.skipped.len(), 1);
}

#[test]
fn a_manifest_edited_by_hand_is_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    checkpoint(&store, 7, 1);
    let path = store.step_dir(7).join("manifest.json");
    std::fs::write(&path, b"{ not json").unwrap();
    let err = store.verify(7, "fp", 1).unwrap_err();
    assert!(err.to_string().contains("manifest.json"), "{err}");
}
