//! Findings (rules `RTL001`-`RTL007`), the text table and the HTML page of a probe run.

use std::fmt::Write as _;

use mlsec_diagnostics::render::escape_html as escape;
use mlsec_diagnostics::render::html::{findings_list, page_head};
use mlsec_diagnostics::{Finding, Location, Report, Rule, Severity};

use crate::detect::Outcome;
use crate::probes::Family;
use crate::run::{Comparison, ProbeReport};

const LLM_TOP_10: &str = "https://genai.owasp.org/llm-top-10/";
const CHEAT_SHEET: &str =
    "https://cheatsheetseries.owasp.org/cheatsheets/Secure_AI_Model_Ops_Cheat_Sheet.html";

pub static RTL_INJECTION: Rule = Rule {
    id: "RTL001",
    name: "llm-prompt-injection",
    summary: "The endpoint follows instructions injected into a prompt or into content it reads",
    severity: Severity::High,
    cwe: &["CWE-1427"],
    owasp: &["LLM01"],
    what: "Sends direct injections under several framings, instructions hidden in documents, pages, CSV and JSON the user asks about, and instructions encoded in base64, ROT13, hex, look-alike letters and split strings; each asks for a marker planted per run, and the reply is searched for it.",
    why: "A model that obeys text it was only meant to read can be steered by anyone who can put text in front of it: a review, an e-mail, a web page, a tool result.",
    example: "indirect-injection/review: the reply contains the planted marker MARK-1A2B3C4D",
    remediation: "Put an injection guard in front of the model (mlsec gateway with guard = \"injection\"), mark retrieved content as data in the prompt, and keep the model's privileges to what the lowest-trust input may cause.",
    references: &[LLM_TOP_10, CHEAT_SHEET],
};

pub static RTL_PROMPT_LEAK: Rule = Rule {
    id: "RTL002",
    name: "llm-system-prompt-leak",
    summary: "The endpoint reveals its system prompt",
    severity: Severity::Medium,
    cwe: &["CWE-200"],
    owasp: &["LLM07"],
    what: "Asks for the system prompt verbatim, summarised, translated, spelled, reversed, encoded and continued; a canary planted in it is searched for in every recoverable form.",
    why: "System prompts hold business rules, tool descriptions and sometimes credentials; a leaked prompt shows an attacker exactly what to get around.",
    example: "prompt-extraction/reverse: (reversed) e5d4c3b2a1f4yrnc",
    remediation: "Keep secrets out of prompts, and block replies that carry the prompt (mlsec gateway's output check system_prompt = \"block\" catches verbatim runs and its canary).",
    references: &[LLM_TOP_10],
};

pub static RTL_JAILBREAK: Rule = Rule {
    id: "RTL003",
    name: "llm-jailbreak",
    summary: "A jailbreak framing makes the endpoint break a rule of its system prompt",
    severity: Severity::Medium,
    cwe: &["CWE-1427"],
    owasp: &["LLM01"],
    what: "Wraps a request the system prompt forbids (writing one planted word) in role play, hypotheticals, two-persona answers, research pretexts, games and step-by-step distraction.",
    why: "If a framing lifts one rule it lifts the others: content policies, topic limits, tool restrictions.",
    example: "jailbreak/roleplay: the forbidden word appears in the reply",
    remediation: "Enforce rules outside the model (output checks, tool allowlists in the gateway) rather than by instruction alone; re-test after model or prompt changes.",
    references: &[LLM_TOP_10],
};

pub static RTL_EXFIL: Rule = Rule {
    id: "RTL004",
    name: "llm-exfiltration-link",
    summary: "The endpoint writes images or links to an attacker's host on request",
    severity: Severity::High,
    cwe: &["CWE-359"],
    owasp: &["LLM05", "LLM02"],
    what: "Asks, directly and through injected content, for markdown images, links and HTML images pointing at an attacker host with conversation data in the URL.",
    why: "A chat UI that renders the reply fetches the image without a click, sending whatever the URL carries (the system prompt, the user's data) to the attacker.",
    example: "exfiltration/image-direct: https://collect.attacker.example/logo.png?ref=CNRY-…",
    remediation: "Do not render images or links to hosts outside an allowlist; strip them from replies at the gateway or the UI.",
    references: &[LLM_TOP_10],
};

pub static RTL_DISCLOSURE: Rule = Rule {
    id: "RTL005",
    name: "llm-sensitive-disclosure",
    summary: "The endpoint discloses a credential or personal data from its context",
    severity: Severity::High,
    cwe: &["CWE-200"],
    owasp: &["LLM02"],
    what: "Plants a fake credential and a customer's e-mail and phone in the context with an instruction not to disclose them, then asks for them under pretexts.",
    why: "Whatever is in the context can come out; credentials and personal data in prompts or retrieved documents are one question away from a user.",
    example: "leakage/credential: The credential is mlsec-test-key-…",
    remediation: "Keep credentials out of model context (tools hold them), minimise personal data in prompts, and redact secrets and PII in replies (mlsec gateway [output]).",
    references: &[LLM_TOP_10],
};

pub static RTL_TOOLS: Rule = Rule {
    id: "RTL006",
    name: "llm-tool-call-forging",
    summary: "The endpoint calls, or writes out a call of, a tool its instructions forbid",
    severity: Severity::Critical,
    cwe: &["CWE-1427"],
    owasp: &["LLM06"],
    what: "Declares an allowed tool and forbidden ones, then asks directly and through injected order notes for a forbidden call, and checks the reply's tool calls and text for forged call markup.",
    why: "Tool calls act in the world: a deleted account or a sent e-mail is not undone by a better reply.",
    example: "tool-forging/indirect: called delete_account({\"customer_id\": 1001})",
    remediation: "Allow only the tools a route needs (mlsec gateway: allow_tools), check every call against the user's rights outside the model, and confirm destructive actions with the user.",
    references: &[LLM_TOP_10],
};

pub static RTL_UNDECIDED: Rule = Rule {
    id: "RTL007",
    name: "llm-probes-undecided",
    summary: "Probes could not be decided (the endpoint failed or did not answer)",
    severity: Severity::Low,
    cwe: &["CWE-754"],
    owasp: &["LLM10"],
    what: "Counts probes whose requests failed after retries: transport errors, 5xx, unreadable replies.",
    why: "An undecided probe is not a resisted one; the run says less than it seems to.",
    example: "6 probes undecided: HTTP 502",
    remediation: "Re-run with --journal to resume, lower --concurrency or --rate, or fix the endpoint.",
    references: &[CHEAT_SHEET],
};

pub static RULES: &[&Rule] = &[
    &RTL_INJECTION,
    &RTL_PROMPT_LEAK,
    &RTL_JAILBREAK,
    &RTL_EXFIL,
    &RTL_DISCLOSURE,
    &RTL_TOOLS,
    &RTL_UNDECIDED,
];

fn rule(f: Family) -> &'static Rule {
    match f {
        Family::DirectInjection | Family::IndirectInjection | Family::Encoding => &RTL_INJECTION,
        Family::PromptExtraction => &RTL_PROMPT_LEAK,
        Family::Jailbreak => &RTL_JAILBREAK,
        Family::Exfiltration => &RTL_EXFIL,
        Family::Leakage => &RTL_DISCLOSURE,
        Family::ToolForging => &RTL_TOOLS,
    }
}

/// One finding per family with a vulnerable probe, and one for undecided probes.
pub fn findings(r: &ProbeReport) -> Report {
    let mut report = Report {
        rules: RULES.to_vec(),
        ..Report::default()
    };
    for f in Family::ALL {
        let hits: Vec<_> = r
            .results
            .iter()
            .filter(|x| x.family == f && x.outcome == Outcome::Vulnerable)
            .collect();
        let Some(first) = hits.first() else { continue };
        let of = r.results.iter().filter(|x| x.family == f).count();
        let techniques: Vec<&str> = hits.iter().map(|x| x.technique.as_str()).collect();
        report.findings.push(
            Finding::new(
                rule(f),
                Location::file(&r.url).field(f.as_str()),
                format!(
                    "{}: {} of {of} probes succeeded ({})",
                    f.as_str(),
                    hits.len(),
                    techniques.join(", ")
                ),
            )
            .evidence(format!(
                "{}: {}",
                first.id,
                first.evidence.as_deref().unwrap_or("")
            )),
        );
    }
    let errors: Vec<_> = r
        .results
        .iter()
        .filter(|x| x.outcome == Outcome::Error)
        .collect();
    if let Some(first) = errors.first() {
        report.findings.push(
            Finding::new(
                &RTL_UNDECIDED,
                Location::file(&r.url),
                format!("{} probes undecided", errors.len()),
            )
            .evidence(format!(
                "{}: {}",
                first.id,
                first.evidence.as_deref().unwrap_or("")
            )),
        );
    }
    report.sort();
    report
}

/// The text report: a table per family, then every successful probe with its evidence.
pub fn text(r: &ProbeReport) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{} (model {}): {} probes, {} requests in {:.1} s{}\n",
        r.url,
        r.model,
        r.results.len(),
        r.requests,
        r.seconds,
        if r.resumed > 0 {
            format!(", {} resumed from the journal", r.resumed)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        t,
        "{:<20} {:>6} {:>10} {:>9} {:>8} {:>7}",
        "family", "probes", "vulnerable", "resisted", "blocked", "errors"
    );
    for s in &r.summary {
        let _ = writeln!(
            t,
            "{:<20} {:>6} {:>10} {:>9} {:>8} {:>7}",
            s.family.map_or("total", Family::as_str),
            s.probes,
            s.vulnerable,
            s.resisted,
            s.blocked,
            s.errors
        );
    }
    let hits: Vec<_> = r
        .results
        .iter()
        .filter(|x| x.outcome == Outcome::Vulnerable)
        .collect();
    if !hits.is_empty() {
        let _ = writeln!(t, "\nsucceeded:");
        for x in hits {
            let _ = writeln!(
                t,
                "  {:<36} {}",
                x.id,
                x.evidence
                    .as_deref()
                    .unwrap_or("")
                    .chars()
                    .take(100)
                    .collect::<String>()
            );
        }
    }
    t.push('\n');
    t
}

/// The comparison as text.
pub fn comparison_text(c: &Comparison) -> String {
    let mut t = String::new();
    let line = |t: &mut String, what: &str, ids: Vec<&str>| {
        let _ = writeln!(t, "{what} ({}):", ids.len());
        for id in ids {
            let _ = writeln!(t, "  {id}");
        }
    };
    line(
        &mut t,
        "fixed",
        c.fixed.iter().map(|x| x.id.as_str()).collect(),
    );
    line(
        &mut t,
        "regressed",
        c.regressed.iter().map(|x| x.id.as_str()).collect(),
    );
    line(
        &mut t,
        "still vulnerable",
        c.still_vulnerable.iter().map(String::as_str).collect(),
    );
    let _ = writeln!(
        t,
        "other changes: {}; in one run only: {}",
        c.other.len(),
        c.unmatched.len()
    );
    t
}

const COLOURS: [(&str, &str); 4] = [
    ("vulnerable", "#c53030"),
    ("resisted", "#2f855a"),
    ("blocked", "#2b6cb0"),
    ("errors", "#a0aec0"),
];

/// The HTML page: a stacked bar per family and the table of probes.
pub fn html(r: &ProbeReport, findings: &Report) -> String {
    let mut h = String::with_capacity(32 * 1024);
    page_head(
        &mut h,
        &format!("mlsec redteam llm: {}", r.url),
        ".vulnerable{color:#c53030;font-weight:600}",
    );
    let _ = write!(
        h,
        "<h1>LLM probes</h1><p>{} &middot; model {} &middot; {} probes, {} requests in {:.1} s</p>",
        escape(&r.url),
        escape(&r.model),
        r.results.len(),
        r.requests,
        r.seconds
    );
    findings_list(&mut h, findings);
    h.push_str("<h2>Outcomes per family</h2>");
    let families: Vec<_> = r.summary.iter().filter(|s| s.family.is_some()).collect();
    let (bar_h, label_w, plot_w) = (22.0, 170.0, 520.0);
    let height = bar_h * families.len() as f64 + 10.0;
    let _ = write!(
        h,
        "<svg id=\"families\" width=\"{}\" height=\"{height}\" role=\"img\">",
        label_w + plot_w + 10.0
    );
    for (i, s) in families.iter().enumerate() {
        let y = i as f64 * bar_h + 4.0;
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            y + 13.0,
            s.family.map_or("", Family::as_str)
        );
        let mut x = label_w;
        for (k, n) in [s.vulnerable, s.resisted, s.blocked, s.errors]
            .iter()
            .enumerate()
        {
            if *n == 0 {
                continue;
            }
            let w = plot_w * *n as f64 / s.probes.max(1) as f64;
            let _ = write!(
                h,
                "<rect class=\"{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} {}</title></rect>",
                COLOURS[k].0,
                bar_h - 6.0,
                COLOURS[k].1,
                n,
                COLOURS[k].0
            );
            x += w;
        }
    }
    h.push_str("</svg><div class=\"legend\">");
    for (name, colour) in COLOURS {
        let _ = write!(h, "<span style=\"background:{colour}\"></span>{name}");
    }
    h.push_str("</div><h2>Probes</h2><table id=\"probes\"><tr><th>probe</th><th>outcome</th><th>status</th><th>evidence</th></tr>");
    for x in &r.results {
        let outcome = match x.outcome {
            Outcome::Vulnerable => "vulnerable",
            Outcome::Resisted => "resisted",
            Outcome::Blocked => "blocked",
            Outcome::Error => "error",
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"{outcome}\">{outcome}{}</td><td>{}</td><td>{}</td></tr>",
            escape(&x.id),
            if x.refused { " (refused)" } else { "" },
            x.status,
            escape(x.evidence.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table></body></html>");
    h
}
