//! The filter registry: uploaded filters on disk, served to pipelines by name or
//! `name@version`, with hot swap of live elements that follow a name.
//!
//! Layout of the data directory:
//! * `blobs/<sha256>.wasm`: the components, content-addressed;
//! * `compiled/<sha256>.cwasm`: wasmtime's compiled code, so a restart does not recompile;
//! * `filters/<name>/<version>.json`: one manifest per name and version;
//! * `tmp/`: files being written (cleared at start).
//!
//! Every file is written atomically (temp file, fsync, rename, fsync of the directory), blob
//! before manifest, so a crash at any point leaves either the old registry or the new one.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};

use serde::{Deserialize, Serialize};

use crate::control::kurento::FilterCatalog;
use crate::control::server::DirCatalog;
use crate::pipeline::WasmFilter;
use crate::runtime::{FilterRuntime, LoadedFilter, RuntimeError};
use crate::sys::now_ms;

/// Largest accepted upload, bytes.
pub const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;

/// Writes `data` to `path` so that readers see the old file or the whole new one.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        uuid::Uuid::new_v4()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// What the registry knows of one uploaded filter version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Filter name (from `describe`).
    pub name: String,
    /// Version (from `describe`).
    pub version: String,
    /// Hex SHA-256 of the component.
    pub hash: String,
    /// Pixel format it works in.
    pub format: String,
    /// JSON schema of its configuration.
    pub params: serde_json::Value,
    /// One line about it.
    pub description: String,
    /// Component size, bytes.
    pub size: usize,
    /// Upload time, ms since the Unix epoch.
    pub uploaded_ms: u64,
}

/// Why an upload or a deletion was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The upload is too large.
    #[error("the upload is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Bytes sent.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The component is not a valid filter.
    #[error(transparent)]
    Invalid(#[from] RuntimeError),
    /// No such filter or version.
    #[error("no filter {0}")]
    NotFound(String),
    /// Live elements use it.
    #[error("{name} is in use by {elements} element(s); delete with force to remove it anyway")]
    InUse {
        /// `name@version`.
        name: String,
        /// Live elements.
        elements: usize,
    },
    /// The disk failed.
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

/// A live element created from the registry.
struct Follower {
    name: String,
    /// `None` follows the newest version.
    pinned: Option<String>,
    hash: Mutex<String>,
    element: Weak<WasmFilter>,
}

/// Compares versions numerically where they are numbers (`1.10.0` > `1.9.0`).
fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split(['.', '-', '+'])
        .map(|part| (part.parse().unwrap_or(0), part.to_string()))
        .collect()
}

/// The registry.
pub struct Registry {
    dir: PathBuf,
    runtime: Arc<FilterRuntime>,
    builtin: DirCatalog,
    entries: RwLock<BTreeMap<String, BTreeMap<String, Manifest>>>,
    followers: Mutex<Vec<Follower>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
        && !s.starts_with('.')
}

impl Registry {
    /// Opens (or creates) the registry in `dir`; `builtin` holds the filters shipped with
    /// Prism, served when no upload has the name.
    pub fn open(dir: &Path, runtime: Arc<FilterRuntime>, builtin: &Path) -> std::io::Result<Self> {
        for sub in ["blobs", "compiled", "filters", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        // Leftovers of interrupted writes.
        for entry in std::fs::read_dir(dir.join("tmp"))?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let mut entries: BTreeMap<String, BTreeMap<String, Manifest>> = BTreeMap::new();
        for name_dir in std::fs::read_dir(dir.join("filters"))?.flatten() {
            for file in std::fs::read_dir(name_dir.path())?.flatten() {
                let path = file.path();
                if path.extension().is_none_or(|x| x != "json") {
                    // A temp file of an interrupted manifest write.
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                let manifest: Option<Manifest> = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                match manifest {
                    Some(m) if dir.join("blobs").join(format!("{}.wasm", m.hash)).is_file() => {
                        entries
                            .entry(m.name.clone())
                            .or_default()
                            .insert(m.version.clone(), m);
                    }
                    _ => tracing::warn!("ignoring a broken manifest {}", path.display()),
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            builtin: DirCatalog::new(runtime.clone(), builtin),
            runtime,
            entries: RwLock::new(entries),
            followers: Mutex::new(Vec::new()),
        })
    }

    fn blob(&self, hash: &str) -> PathBuf {
        self.dir.join("blobs").join(format!("{hash}.wasm"))
    }

    fn artifact(&self, hash: &str) -> PathBuf {
        self.dir.join("compiled").join(format!("{hash}.cwasm"))
    }

    fn manifest_path(&self, name: &str, version: &str) -> PathBuf {
        self.dir
            .join("filters")
            .join(name)
            .join(format!("{version}.json"))
    }

    /// Validates, compiles and stores a component; live elements following its name switch
    /// to it at their next frame.
    pub fn upload(&self, bytes: &[u8]) -> Result<Manifest, RegistryError> {
        if bytes.len() > MAX_UPLOAD_BYTES {
            return Err(RegistryError::TooLarge {
                size: bytes.len(),
                limit: MAX_UPLOAD_BYTES,
            });
        }
        let hash = crate::runtime::content_hash(bytes);
        let loaded = self
            .runtime
            .load_with_artifact(bytes, Some(&self.artifact(&hash)))?;
        let info = &loaded.info;
        if !valid_name(&info.name) || !valid_name(&info.version) {
            return Err(RegistryError::Invalid(RuntimeError::Describe(format!(
                "name {:?} and version {:?} must be letters, digits, '-', '_', '.', '+'",
                info.name, info.version
            ))));
        }
        let manifest = Manifest {
            name: info.name.clone(),
            version: info.version.clone(),
            hash: loaded.hash.clone(),
            format: info.format.name().to_string(),
            params: info.parameters_schema.clone(),
            description: info.description.clone(),
            size: bytes.len(),
            uploaded_ms: now_ms(),
        };
        let blob = self.blob(&manifest.hash);
        if !blob.is_file() {
            write_atomic(&blob, bytes)?;
        }
        write_atomic(
            &self.manifest_path(&manifest.name, &manifest.version),
            &serde_json::to_vec_pretty(&manifest).expect("invariant: manifests serialize"),
        )?;
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(manifest.name.clone())
            .or_default()
            .insert(manifest.version.clone(), manifest.clone());
        self.swap_followers(&manifest.name, &loaded);
        Ok(manifest)
    }

    /// Every uploaded filter version, by name then version.
    pub fn list(&self) -> Vec<Manifest> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .flat_map(|versions| versions.values().cloned())
            .collect()
    }

    /// The versions of one filter, oldest first.
    pub fn versions(&self, name: &str) -> Vec<Manifest> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Manifest> = entries
            .get(name)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|m| version_key(&m.version));
        v
    }

    /// The newest version of `name`, or the exact `version`.
    pub fn manifest(&self, name: &str, version: Option<&str>) -> Option<Manifest> {
        let versions = self.versions(name);
        match version {
            Some(v) => versions.into_iter().find(|m| m.version == v),
            None => versions.into_iter().last(),
        }
    }

    /// Names of the filters shipped with Prism.
    pub fn builtin_names(&self) -> Vec<String> {
        self.builtin.names()
    }

    fn live_users(&self, name: &str, hash: Option<&str>) -> usize {
        let mut followers = crate::sys::lock(&self.followers);
        followers.retain(|f| f.element.strong_count() > 0);
        followers
            .iter()
            .filter(|f| f.name == name && hash.is_none_or(|h| *crate::sys::lock(&f.hash) == h))
            .count()
    }

    /// Removes one version (or every version) of a filter; refused while live elements use
    /// it unless `force`.
    pub fn delete(
        &self,
        name: &str,
        version: Option<&str>,
        force: bool,
    ) -> Result<Vec<Manifest>, RegistryError> {
        let doomed: Vec<Manifest> = self
            .versions(name)
            .into_iter()
            .filter(|m| version.is_none_or(|v| m.version == v))
            .collect();
        if doomed.is_empty() {
            let what = match version {
                Some(v) => format!("{name}@{v}"),
                None => name.to_string(),
            };
            return Err(RegistryError::NotFound(what));
        }
        if !force {
            for m in &doomed {
                let users = self.live_users(name, Some(&m.hash));
                if users > 0 {
                    return Err(RegistryError::InUse {
                        name: format!("{}@{}", m.name, m.version),
                        elements: users,
                    });
                }
            }
        }
        for m in &doomed {
            std::fs::remove_file(self.manifest_path(&m.name, &m.version))?;
            if let Some(versions) = self
                .entries
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(name)
            {
                versions.remove(&m.version);
            }
        }
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, v| !v.is_empty());
        // Blobs still named by another manifest stay.
        let kept: std::collections::HashSet<String> =
            self.list().into_iter().map(|m| m.hash).collect();
        for m in &doomed {
            if !kept.contains(&m.hash) {
                let _ = std::fs::remove_file(self.blob(&m.hash));
                let _ = std::fs::remove_file(self.artifact(&m.hash));
            }
        }
        Ok(doomed)
    }

    /// Loads an uploaded filter version.
    fn load(&self, manifest: &Manifest) -> Result<Arc<LoadedFilter>, String> {
        let bytes = std::fs::read(self.blob(&manifest.hash)).map_err(|e| e.to_string())?;
        self.runtime
            .load_with_artifact(&bytes, Some(&self.artifact(&manifest.hash)))
            .map_err(|e| e.to_string())
    }

    fn swap_followers(&self, name: &str, loaded: &Arc<LoadedFilter>) {
        let followers = crate::sys::lock(&self.followers);
        for f in followers
            .iter()
            .filter(|f| f.name == name && f.pinned.is_none())
        {
            let Some(element) = f.element.upgrade() else {
                continue;
            };
            let mut hash = crate::sys::lock(&f.hash);
            if *hash == loaded.hash {
                continue;
            }
            match element.swap_filter(loaded) {
                Ok(()) => *hash = loaded.hash.clone(),
                Err(e) => tracing::warn!("hot swap of {name} failed: {e}"),
            }
        }
    }
}

impl FilterCatalog for Registry {
    fn resolve(&self, spec: &str) -> Result<Arc<LoadedFilter>, String> {
        let (name, version) = match spec.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (spec, None),
        };
        match self.manifest(name, version) {
            Some(m) => self.load(&m),
            None => self.builtin.resolve(spec),
        }
    }

    fn attach(&self, spec: &str, element: &Arc<WasmFilter>) {
        let (name, pinned) = match spec.split_once('@') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (spec.to_string(), None),
        };
        let mut followers = crate::sys::lock(&self.followers);
        followers.retain(|f| f.element.strong_count() > 0);
        followers.push(Follower {
            name,
            pinned,
            hash: Mutex::new(element.filter_hash()),
            element: Arc::downgrade(element),
        });
    }

    fn available(&self, name: &str) -> bool {
        self.manifest(name, None).is_some() || self.builtin.available(name)
    }
}
