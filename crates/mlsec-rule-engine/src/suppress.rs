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
        // A value that names itself (`password: vc_password`, `PASSWORD=password`) is a
        // variable or a stand-in.
        "password",
        "passwd",
    ] {
        if lower.contains(word) {
            return true;
        }
    }
    if v.contains("####") || v.contains("____") {
        return true;
    }
    // One character repeated, or two alternating (`abababab`), in the whole value or in what
    // follows a token prefix (`sntryu_aaaa...`, `glpat-0000...`); a run of eight identical
    // characters anywhere.
    let few = |b: &[u8]| {
        let distinct: std::collections::BTreeSet<u8> = b.iter().copied().collect();
        distinct.len() <= 2 && b.len() >= 6
    };
    let bytes = v.as_bytes();
    let body = v
        .find(['_', '-'])
        .filter(|&i| i <= 12)
        .map_or(bytes, |i| &bytes[i + 1..]);
    few(bytes) || few(body) || bytes.windows(8).any(|w| w.iter().all(|&c| c == w[0]))
}

/// SHA-256 digests of keys published in vendors' documentation and copied into code, READMEs and
/// tests everywhere. They are examples, not credentials; stored as digests so that the repository
/// holds no secret-shaped text.
const DOCUMENTATION_EXAMPLES: &[(&str, &str)] = &[
    (
        "7f75367e7881255134e1375e723d1dea8ad5f6a4fdb79d938df1f1754a830606",
        "jwt.io's example token",
    ),
    (
        "2cafc0970149a84f3b9e62eaf169f36f59907a3b3e31f7b82e68c69cd27f7326",
        "Stripe's documentation test key",
    ),
    (
        "2ddc147f3a3b5a1722b8ed6be3c45c49a7156b17fca5d11410137a6d04def6eb",
        "Slack's API documentation bot token",
    ),
    (
        "9c846fdf0fa8955c377d0301542ee20ecd4585c5f359aa0a4cf15d44424f573d",
        "Mailgun's documentation key",
    ),
    (
        "0b5dd075ccdd03c42f4edda8e299e6838e2a75d3486a2a8d86940ed1541e9178",
        "Telegram's Bot API example token",
    ),
    (
        "731fa294d036e54f19df879bfcd4fe72d967dc6327800c5f74a48414a3f258c9",
        "Telegram's Bot API example token",
    ),
];

/// Which published documentation example a value is, if it is one.
pub fn documentation_example(value: &str) -> Option<&'static str> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(value.as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(hex, "{b:02x}");
    }
    DOCUMENTATION_EXAMPLES
        .iter()
        .find(|(d, _)| *d == hex)
        .map(|(_, what)| *what)
}

/// Whether a value is a code identifier rather than a credential: `Mistral3ForConditionalGeneration`,
/// `MLFLOW_TRACKING_PASSWORD_ENV`, `settings.snowflake_password`. It splits into words at
/// `_`, `-`, `.` and case or digit changes; every word is at least three letters long and holds
/// a vowel, with at most two short digit runs and two acronyms. Random keys break into short consonant-heavy
/// fragments and never pass.
pub fn identifier(value: &str) -> bool {
    // `NAME,` and `name)` at the end of a capture are the code around it.
    let value = value.trim_end_matches([',', ';', ':', ')', ']', '}']);
    if value.len() < 6
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return false;
    }
    let mut words: Vec<String> = Vec::new();
    let mut digit_runs = 0;
    let chars: Vec<char> = value.chars().collect();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let boundary = match prev {
            None => false,
            Some('_' | '-' | '.') => true,
            Some(p) => {
                (p.is_ascii_lowercase() && c.is_ascii_uppercase())
                    || (p.is_ascii_digit() != c.is_ascii_digit())
                    // `HTTPServer`: the last capital of a run starts the next word.
                    || (p.is_ascii_uppercase()
                        && c.is_ascii_uppercase()
                        && next.is_some_and(|n| n.is_ascii_lowercase()))
            }
        };
        if boundary && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        if !matches!(c, '_' | '-' | '.') {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let (mut letters, mut acronyms) = (0, 0);
    for w in &words {
        if w.chars().all(|c| c.is_ascii_digit()) {
            digit_runs += 1;
            if w.len() > 2 || digit_runs > 2 {
                return false;
            }
            continue;
        }
        // Acronyms (`LM`, `GPT`, `HTTP`): a few, beside real words.
        if (2..=5).contains(&w.len()) && w.chars().all(|c| c.is_ascii_uppercase()) {
            acronyms += 1;
            if acronyms > 2 {
                return false;
            }
            continue;
        }
        let lower = w.to_ascii_lowercase();
        if lower.len() < 3 || !lower.contains(['a', 'e', 'i', 'o', 'u', 'y']) {
            return false;
        }
        letters += 1;
    }
    letters >= 2
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
        // Azurite, the storage emulator: its account key is published in Microsoft's docs.
        || l.contains("devstoreaccount1")
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
        for p in [
            "sntryu_aaaaaaaaaaaaaaaaaaaa",
            "xoxp-1-####",
            "glpat-00000000000000000000",
            "key_____",
        ] {
            assert!(placeholder(p), "{p}");
        }
    }

    #[test]
    fn identifiers_are_not_keys() {
        for id in [
            "Mistral3ForConditionalGeneration",
            "MistralForCausalLM",
            "MLFLOW_TRACKING_PASSWORD_ENV",
            "settings.snowflake_password",
            "kserve-webhook-server-cert",
            "HTTPServerConfiguration",
        ] {
            assert!(identifier(id), "{id}");
        }
        // Random keys of every usual alphabet are not identifiers.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        for _ in 0..2000 {
            let key: String = (0..32)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize] as char
                })
                .collect();
            assert!(!identifier(&key), "{key}");
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
