//! Compiling `[settings]`: app schemes, the country header, the click id
//! parameter, trailing slash handling and the default `Cache-Control`.

use http::HeaderValue;

use super::Compiler;
use crate::encode;
use crate::format::SettingsDef;
use crate::ruleset::TrailingSlash;

impl Compiler {
    pub(crate) fn settings(&mut self, s: SettingsDef) {
        for scheme in &s.app_schemes {
            let v = scheme.get_ref().to_ascii_lowercase();
            let ok = v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
            if !ok || matches!(v.as_str(), "javascript" | "data" | "vbscript" | "file") {
                self.err(
                    scheme.span().start,
                    "",
                    format!("`{v}` cannot be an app scheme"),
                );
                continue;
            }
            self.schemes.push(v.clone());
            self.settings.app_schemes.push(v);
        }
        self.settings.country_header = s.country_header;
        if let Some(p) = s.click_id_param {
            if p.get_ref().is_empty()
                || !encode::all_kept(p.get_ref(), &encode::QUERY_VALUE)
                || p.get_ref().contains(['?', '/'])
            {
                self.err(
                    p.span().start,
                    "",
                    "click_id_param must be a plain query parameter name",
                );
            } else {
                self.settings.click_id_param = Some(p.into_inner());
            }
        }
        if let Some(t) = s.trailing_slash {
            match t.get_ref().as_str() {
                "ignore" => self.settings.trailing_slash = TrailingSlash::Ignore,
                "strict" => self.settings.trailing_slash = TrailingSlash::Strict,
                other => self.err(
                    t.span().start,
                    "",
                    format!("trailing_slash must be \"ignore\" or \"strict\", not \"{other}\""),
                ),
            }
        }
        if let Some(cc) = s.default_cache_control {
            if HeaderValue::from_str(cc.get_ref()).is_err() {
                self.err(
                    cc.span().start,
                    "",
                    "default_cache_control is not a valid header value",
                );
            } else {
                self.settings.default_cache_control = cc.into_inner();
            }
        }
    }
}
