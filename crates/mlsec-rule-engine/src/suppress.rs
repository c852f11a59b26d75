//! What looks like a secret but is not: placeholders, hashes and ids that ML repositories are
//! full of, encrypted files, and the inline allow comments of mlsec, gitleaks and detect-secrets.

/// Whether a value is a placeholder (`<your-key>`, `${VAR}`, `{{ x }}`, `sk-XXXX`, `****`,
/// `changeme`, runs of one character, ...).
pub fn placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'');
    let lower = v.to_ascii_lowercase();
    if v.is_empty()
        || v.starts_with('<')
        || v.contains("${")
        || v.contains("{{")
        || v.starts_with('$')
        || v.starts_with('%') && v.ends_with('%')
        || v.contains("...")
        || v.contains('…')
    {
        return true;
    }
    for word in [
        "xxxx",
        "****",
        "your",
        "example",
        "placeholder",
        "changeme",
        "change_me",
        "dummy",
        "redacted",
        "replace",
        "insert",
        "todo",
        "fixme",
        "sample",
        "fake",
        "notreal",
        "not-a-real",
        "not_a_real",
        "0000000000",
        "1234567890",
        "abcdefghij",
    ] {
        if lower.contains(word) {
            return true;
        }
    }
    // One character repeated, or two alternating (`abababab`).
    let bytes = v.as_bytes();
    let distinct: std::collections::BTreeSet<u8> = bytes.iter().copied().collect();
    distinct.len() <= 2 && bytes.len() >= 6
}

/// Files whose every value is a hash or a version: lockfiles and DVC state.
pub fn hash_file(path: &str) -> bool {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    matches!(
        name,
        "poetry.lock"
            | "Pipfile.lock"
            | "uv.lock"
            | "pdm.lock"
            | "package-lock.json"
            | "yarn.lock"
            | "pnpm-lock.yaml"
            | "Cargo.lock"
            | "go.sum"
            | "composer.lock"
            | "Gemfile.lock"
            | "conda-lock.yml"
            | "dvc.lock"
    ) || name.ends_with(".dvc")
}

/// Whether the context of a match says it is a hash, an id or ciphertext, not a credential.
/// `before` is the text of the line before the secret.
pub fn benign_context(line: &str, before: &str) -> bool {
    let l = line.to_ascii_lowercase();
    // Only what immediately precedes the value: `token=..., run_id=` must not excuse the token.
    let start = before.char_indices().rev().nth(47).map_or(0, |(i, _)| i);
    let b = before[start..].to_ascii_lowercase();
    // Package hashes, image digests, Git LFS pointers.
    l.contains("--hash=")
        || l.contains("integrity")
        || b.contains("sha256:")
        || b.contains("sha512:")
        || b.contains("sha1:")
        || l.starts_with("oid sha256:")
        // DVC / artifact metadata.
        || ["md5:", "etag:", "checksum:", "\"md5\"", "\"etag\"", "\"checksum\"", "hash:"].iter().any(|k| b.trim_start().starts_with(k) || b.contains(&format!(" {k}")) || b.contains(&format!("{{{k}")))
        // Hugging Face commit pins and MLflow run references.
        || b.contains("_commit_hash")
        || b.contains("revision")
        || b.contains("runs:/")
        || b.contains("mlflow-artifacts:")
        || b.contains("run_id")
        || b.contains("experiment_id")
        // Notebook widget models and output ids.
        || b.contains("\"model_id\"")
        || b.contains("\"version_major\"")
        // SOPS ciphertext.
        || l.contains("enc[aes256_gcm")
}

/// Files that are encrypted as a whole (their values are ciphertext).
pub fn encrypted_file(text: &str) -> bool {
    text.starts_with("$ANSIBLE_VAULT;")
        || (text.contains("kind: SealedSecret") && text.contains("encryptedData"))
}

/// Inline allow comments on the line itself.
pub fn allowed_inline(line: &str) -> bool {
    line.contains("mlsec:allow")
        || line.contains("gitleaks:allow")
        || line.contains("pragma: allowlist secret")
}

/// Whether a text holds any allow comment.
pub fn has_allow_marker(text: &str) -> bool {
    allowed_inline(text) || allowed_next(text)
}

/// Allow comments on the line before, for the next line.
pub fn allowed_next(previous: &str) -> bool {
    previous.contains("mlsec:allow-next-line")
        || previous.contains("pragma: allowlist nextline secret")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        for p in [
            "<your-key>",
            "${HF_TOKEN}",
            "{{ .Values.key }}",
            "sk-XXXXXXXXXXXX",
            "********",
            "changeme",
            "aaaaaaaaaa",
            "$TOKEN",
        ] {
            assert!(placeholder(p), "{p}");
        }
        for real in ["Zq8vN2kLp0xY", "hf_QwErTyUiOpAsDfGhJkLz"] {
            assert!(!placeholder(real), "{real}");
        }
    }

    #[test]
    fn ml_contexts() {
        assert!(benign_context(
            "    _commit_hash: 0123",
            "    _commit_hash: "
        ));
        assert!(benign_context(
            "model = mlflow.pyfunc.load_model('runs:/abc/model')",
            "model = mlflow.pyfunc.load_model('runs:/"
        ));
        assert!(benign_context(
            "torch==2.3.0 --hash=sha256:00",
            "torch==2.3.0 --hash=sha256:"
        ));
        assert!(!benign_context("WANDB_API_KEY=abc", "WANDB_API_KEY="));
        assert!(hash_file("a/b/poetry.lock") && hash_file("data.dvc") && !hash_file("app.py"));
    }
}
