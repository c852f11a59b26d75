//! Jinja chat templates (GGUF `tokenizer.chat_template`): signs of server-side template
//! injection. Real chat templates index messages, loop and trim strings; they never touch dunder
//! attributes or build attribute names from escapes.

use mlsec_diagnostics::Severity;

pub struct Risk {
    pub severity: Severity,
    pub message: String,
    pub evidence: String,
}

/// Largest template inspected; longer ones are inspected up to this size.
pub const MAX_TEMPLATE: usize = 4 * 1024 * 1024;

fn context(t: &str, at: usize) -> String {
    let start = (0..=at.saturating_sub(30))
        .rev()
        .find(|&i| t.is_char_boundary(i))
        .unwrap_or(0);
    let end = (at + 50).min(t.len());
    let end = (end..=t.len())
        .find(|&i| t.is_char_boundary(i))
        .unwrap_or(t.len());
    t[start..end].replace('\n', "\\n")
}

/// First occurrence of `needle` that does not continue an identifier (`retrieval(` is not
/// `eval(`); needles starting with punctuation match anywhere.
fn find_word(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let needs_boundary = needle.first().is_some_and(|&b| ident(b));
    let mut from = 0;
    while let Some(p) = memchr::memmem::find(&hay[from..], needle) {
        let at = from + p;
        if !needs_boundary || at == 0 || !ident(hay[at - 1]) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

pub fn risks(template: &str) -> Vec<Risk> {
    let cut = (0..=template.len().min(MAX_TEMPLATE))
        .rev()
        .find(|&i| template.is_char_boundary(i))
        .unwrap_or(0);
    let t = &template[..cut];
    let mut out = Vec::new();
    let b = t.as_bytes();
    // Dunder attribute names: __class__, __globals__, __subclasses__, __builtins__, __import__ ...
    let mut i = 0;
    while let Some(p) = memchr::memmem::find(&b[i..], b"__") {
        let s = i + p;
        let mut e = s + 2;
        while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_') {
            e += 1;
        }
        let word = &t[s..e];
        if word.len() > 4
            && word.ends_with("__")
            && word[2..word.len() - 2]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric())
        {
            out.push(Risk { severity: Severity::Critical, message: format!("template accesses the Python internal attribute {word}, the first step of a sandbox escape"), evidence: context(t, s) });
            break;
        }
        i = e.max(s + 2);
    }
    let checks: &[(&str, Severity, &str)] = &[
        (
            "|attr(",
            Severity::High,
            "template uses the attr filter, which reads attributes by computed name",
        ),
        (
            "| attr(",
            Severity::High,
            "template uses the attr filter, which reads attributes by computed name",
        ),
        (
            "\\x5f",
            Severity::High,
            "template spells '_' as an escape (\\x5f), a way to hide dunder names",
        ),
        (
            "\\u005f",
            Severity::High,
            "template spells '_' as an escape (\\u005f), a way to hide dunder names",
        ),
        (
            "\\137",
            Severity::High,
            "template spells '_' as an octal escape, a way to hide dunder names",
        ),
        (
            "'_'~",
            Severity::High,
            "template concatenates underscores, a way to build dunder names",
        ),
        (
            "\"_\"~",
            Severity::High,
            "template concatenates underscores, a way to build dunder names",
        ),
        (
            "'_' ~",
            Severity::High,
            "template concatenates underscores, a way to build dunder names",
        ),
        (
            "'_'*2",
            Severity::High,
            "template repeats underscores, a way to build dunder names",
        ),
        (
            "'_' * 2",
            Severity::High,
            "template repeats underscores, a way to build dunder names",
        ),
        (
            "lipsum",
            Severity::High,
            "template references lipsum, whose globals reach the os module",
        ),
        (
            "cycler",
            Severity::High,
            "template references cycler, a known sandbox-escape gadget",
        ),
        (
            "joiner",
            Severity::Medium,
            "template references joiner, a known sandbox-escape gadget",
        ),
        (
            "_TemplateReference",
            Severity::High,
            "template reaches the template context internals",
        ),
        ("popen", Severity::Critical, "template names popen"),
        (
            "subprocess",
            Severity::Critical,
            "template names subprocess",
        ),
        ("os.system", Severity::Critical, "template names os.system"),
        (
            "import_module",
            Severity::Critical,
            "template names import_module",
        ),
        ("eval(", Severity::High, "template calls eval"),
        ("exec(", Severity::High, "template calls exec"),
        (
            "{% import",
            Severity::Medium,
            "template imports another template",
        ),
        (
            "{% include",
            Severity::Medium,
            "template includes another template",
        ),
        (
            "{% extends",
            Severity::Medium,
            "template extends another template",
        ),
    ];
    for (needle, sev, msg) in checks {
        if let Some(p) = find_word(b, needle.as_bytes()) {
            out.push(Risk {
                severity: *sev,
                message: (*msg).to_owned(),
                evidence: context(t, p),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_template_is_quiet() {
        let t = "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] | trim }}{% elif loop.last %}{{ raise_exception('x') }}{% endif %}{% endfor %}{% set ns = namespace(a=1) %}";
        assert!(risks(t).is_empty());
    }

    #[test]
    fn common_chat_template_shapes_are_quiet() {
        let chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
        let llama3 = "{%- set date_string = strftime_now('%d %b %Y') %}{{- bos_token }}{%- if tools is not none %}{%- for t in tools %}{{- t | tojson(indent=4) }}{%- endfor %}{%- endif %}{%- for message in messages %}{%- if message.role == 'ipython' %}{{- '<|start_header_id|>ipython<|end_header_id|>\\n\\n' }}{%- elif 'tool_calls' in message %}{%- set tool_call = message.tool_calls[0].function %}{{- '{\"name\": \"' + tool_call.name + '\", ' }}{{- tool_call.arguments | tojson }}{%- endif %}{{- message['content'] | trim + '<|eot_id|>' }}{%- endfor %}";
        let mistral = "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}{%- set loop_messages = messages[1:] %}{%- endif %}{%- for message in loop_messages %}{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif %}{%- endfor %}{%- set ns = namespace(found=false) %}";
        for t in [chatml, llama3, mistral] {
            let r = risks(t);
            assert!(
                r.is_empty(),
                "{:?}",
                r.iter().map(|x| &x.message).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn words_inside_identifiers_are_not_matches() {
        assert!(risks("{{ retrieval(x) }} {{ executor(y) }} {{ mycycler }}").is_empty());
    }

    #[test]
    fn ssti_payloads() {
        assert!(
            risks("{{ self.__init__.__globals__.__builtins__ }}")
                .iter()
                .any(|r| r.severity == Severity::Critical)
        );
        assert!(risks("{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}").len() >= 2);
        assert!(
            risks("{{ cycler.next }}")
                .iter()
                .any(|r| r.severity == Severity::High)
        );
    }
}
