//! The built-in knowledge base: the `.md` / `.txt` files of a folder, split into
//! passages and ranked with BM25 (the `bm25` crate), needing no service.
//!
//! Passages are paragraphs (blank-line separated; a Markdown heading starts a new
//! one) merged up to [`PASSAGE_CHARS`], so a hit carries enough context to answer
//! from and names its file. The folder is indexed when the worker starts (a missing
//! folder stops it); afterwards a query first checks, at most every
//! `KNOWLEDGE_BASE_RELOAD_SECS`, whether any file's size or modification time
//! changed, and re-indexes when one did: editing the documents needs no restart.

use super::settings::ToolSettings;
use super::{CallResult, Outcome};
use bm25::{Document, Language, SearchEngine, SearchEngineBuilder};
use serde_json::{Value, json};
use shared::agent::KnowledgeBaseSpec;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Passages are merged paragraphs of about this many characters.
const PASSAGE_CHARS: usize = 800;

/// One searchable piece of a document.
#[derive(Debug, Clone, PartialEq)]
struct Passage {
    file: String,
    text: String,
}

/// What the folder looked like when indexed: (file, size, modified) for each file.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

struct Index {
    fingerprint: Fingerprint,
    passages: Vec<Passage>,
    engine: SearchEngine<usize>,
    checked_at: Instant,
}

/// One knowledge-base tool.
pub struct KnowledgeBase {
    folder: PathBuf,
    top_k: usize,
    reload_every: Duration,
    // A std mutex: held only while searching or re-indexing, never across an await.
    index: Mutex<Index>,
}

impl KnowledgeBase {
    /// Indexes `spec.documents`; an unreadable or missing folder is an error.
    pub fn open(spec: &KnowledgeBaseSpec, settings: &ToolSettings) -> Result<Self, String> {
        let folder = spec.documents.clone();
        let index = build(&folder)?;
        tracing::info!(folder = %folder.display(), passages = index.passages.len(), "knowledge base indexed");
        Ok(Self {
            folder,
            top_k: spec.top_k as usize,
            reload_every: Duration::from_secs(settings.knowledge_base_reload_secs),
            index: Mutex::new(index),
        })
    }

    /// The best passages for `{"query": ...}`.
    pub fn query(&self, arguments: &Value) -> CallResult {
        let query = arguments
            .get("query")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut index = self.index.lock().expect("knowledge base lock");
        if index.checked_at.elapsed() >= self.reload_every {
            self.reload_if_changed(&mut index);
        }
        let hits: Vec<Value> = index
            .engine
            .search(query, self.top_k)
            .into_iter()
            .filter(|hit| hit.score > 0.0)
            .map(|hit| {
                let passage = &index.passages[hit.document.id];
                json!({"file": passage.file, "text": passage.text})
            })
            .collect();
        let mut result = json!({"passages": hits});
        if hits_empty(&result) {
            result["note"] = json!("No passage of the knowledge base matches this query.");
        }
        CallResult {
            result,
            outcome: Outcome::Ok,
        }
    }

    fn reload_if_changed(&self, index: &mut Index) {
        index.checked_at = Instant::now();
        match fingerprint(&self.folder) {
            Ok(now) if now == index.fingerprint => {}
            Ok(_) => match build(&self.folder) {
                Ok(fresh) => {
                    tracing::info!(folder = %self.folder.display(), passages = fresh.passages.len(), "knowledge base re-indexed");
                    *index = fresh;
                }
                Err(error) => {
                    tracing::warn!(%error, "knowledge base not re-indexed; keeping the old index")
                }
            },
            Err(error) => {
                tracing::warn!(%error, "knowledge base folder unreadable; keeping the old index")
            }
        }
    }
}

fn hits_empty(result: &Value) -> bool {
    result["passages"].as_array().is_none_or(Vec::is_empty)
}

fn is_document(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["md", "txt", "markdown"].contains(&e.to_ascii_lowercase().as_str()))
}

/// The documents of the folder (and its subfolders), sorted, with size and mtime.
fn fingerprint(folder: &Path) -> Result<Fingerprint, String> {
    let mut files = Vec::new();
    let mut dirs = vec![folder.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| format!("documents folder {} cannot be read: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(path);
            } else if is_document(&path) {
                files.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    files.sort();
    Ok(files)
}

fn build(folder: &Path) -> Result<Index, String> {
    let fingerprint = fingerprint(folder)?;
    let mut passages = Vec::new();
    for (path, _, _) in &fingerprint {
        let Ok(text) = std::fs::read_to_string(path) else {
            tracing::warn!(file = %path.display(), "skipping a document that is not UTF-8 text");
            continue;
        };
        let file = path
            .strip_prefix(folder)
            .unwrap_or(path)
            .display()
            .to_string();
        passages.extend(split(&text).into_iter().map(|text| Passage {
            file: file.clone(),
            text,
        }));
    }
    let documents: Vec<Document<usize>> = passages
        .iter()
        .enumerate()
        .map(|(i, p)| Document::new(i, format!("{} {}", p.file, p.text)))
        .collect();
    let engine = SearchEngineBuilder::<usize>::with_documents(Language::English, documents).build();
    Ok(Index {
        fingerprint,
        passages,
        engine,
        checked_at: Instant::now(),
    })
}

/// Paragraphs merged up to [`PASSAGE_CHARS`]; a heading starts a new passage.
fn split(text: &str) -> Vec<String> {
    let mut passages: Vec<String> = Vec::new();
    let mut current = String::new();
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let heading = paragraph.starts_with('#');
        if !current.is_empty() && (heading || current.len() + paragraph.len() > PASSAGE_CHARS) {
            passages.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(paragraph);
    }
    if !current.is_empty() {
        passages.push(current);
    }
    passages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(reload: u64) -> ToolSettings {
        let mut s = ToolSettings::defaults();
        s.knowledge_base_reload_secs = reload;
        s
    }

    #[test]
    fn headings_start_passages() {
        let parts = split("# Hours\n\nOpen 8-18.\n\n# Prices\n\nA blood test costs 20 EUR.");
        assert_eq!(
            parts,
            vec![
                "# Hours\n\nOpen 8-18.",
                "# Prices\n\nA blood test costs 20 EUR."
            ]
        );
    }

    #[test]
    fn answers_from_the_folder_and_sees_changes() {
        let dir = std::env::temp_dir().join(format!("kb-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(
            dir.join("hours.md"),
            "# Opening hours\n\nThe lab opens at 7:30 on weekdays.",
        )
        .unwrap();
        std::fs::write(dir.join("sub/prices.txt"), "A blood test costs 25 euros.").unwrap();
        std::fs::write(dir.join("ignored.bin"), "blood blood blood").unwrap();
        let spec = KnowledgeBaseSpec {
            documents: dir.clone(),
            top_k: 2,
        };
        let kb = KnowledgeBase::open(&spec, &settings(0)).unwrap();

        let hit = kb
            .query(&json!({"query": "how much is a blood test"}))
            .result;
        assert_eq!(hit["passages"][0]["file"], "sub/prices.txt");
        assert!(
            hit["passages"][0]["text"]
                .as_str()
                .unwrap()
                .contains("25 euros")
        );
        assert_eq!(hit["passages"].as_array().unwrap().len(), 1);

        let none = kb.query(&json!({"query": "parking"})).result;
        assert!(none["note"].is_string());

        std::fs::write(
            dir.join("parking.md"),
            "Parking is free behind the building.",
        )
        .unwrap();
        let fresh = kb.query(&json!({"query": "parking"})).result;
        assert_eq!(fresh["passages"][0]["file"], "parking.md");
        std::fs::remove_dir_all(dir).unwrap();

        let missing = KnowledgeBaseSpec {
            documents: "/nonexistent/kb".into(),
            top_k: 1,
        };
        assert!(KnowledgeBase::open(&missing, &settings(0)).is_err());
    }
}
