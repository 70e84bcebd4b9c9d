//! Device and bot classification from the User-Agent.

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Serialize;

/// The device class a redirect can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// iPhone, iPad, iPod and iOS in-app browsers.
    Ios,
    /// Android phones and tablets.
    Android,
    /// Everything else.
    Desktop,
}

impl Device {
    /// Lower-case name used in logs, metrics and click events.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Ios => "ios",
            Device::Android => "android",
            Device::Desktop => "desktop",
        }
    }
}

/// Tokens of crawlers and link-preview fetchers. They unfurl links in chats
/// and index pages; they must see the default destination, and their fetches
/// are not consumer clicks.
const BOT_TOKENS: &[&str] = &[
    "bot",
    "Bot",
    "crawler",
    "Crawler",
    "spider",
    "Spider",
    "facebookexternalhit",
    "Facebot",
    "WhatsApp",
    "Slack-ImgProxy",
    "Slackbot",
    "Twitterbot",
    "LinkedInBot",
    "Discordbot",
    "TelegramBot",
    "Applebot",
    "Pinterestbot",
    "Embedly",
    "vkShare",
    "SkypeUriPreview",
    "Google-InspectionTool",
    "Mediapartners-Google",
    "AdsBot-Google",
    "Yahoo! Slurp",
    "ia_archiver",
    "HeadlessChrome",
    "Lighthouse",
];

/// iOS markers: the devices themselves and in-app browsers that report iOS
/// without the device name (`FBIOS`, `CFNetwork … Darwin`).
const IOS_TOKENS: &[&str] = &["iPhone", "iPad", "iPod", "FBIOS", "iOS", "CFNetwork"];

/// What the User-Agent says about the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeviceClass {
    /// Device class.
    pub device: Device,
    /// A known crawler or link-preview bot.
    pub bot: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Bot,
    Ios,
    Android,
}

/// Classifies User-Agents in one pass over the header, however many tokens
/// are known (an Aho-Corasick automaton built once per rule set).
#[derive(Debug, Clone)]
pub struct Classifier {
    automaton: AhoCorasick,
    kinds: Vec<Token>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Token::Bot => "bot",
            Token::Ios => "ios",
            Token::Android => "android",
        })
    }
}

impl Classifier {
    /// Builds the automaton over the known tokens.
    pub fn new() -> Result<Self, String> {
        let mut patterns: Vec<&str> = Vec::new();
        let mut kinds = Vec::new();
        for (list, kind) in [
            (BOT_TOKENS, Token::Bot),
            (IOS_TOKENS, Token::Ios),
            (&["Android"][..], Token::Android),
        ] {
            patterns.extend_from_slice(list);
            kinds.extend(std::iter::repeat_n(kind, list.len()));
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|e| format!("cannot build the User-Agent classifier: {e}"))?;
        Ok(Classifier { automaton, kinds })
    }

    /// Classifies a User-Agent: Android wins over iOS markers (some
    /// Android in-app browsers mention iOS), anything else is desktop.
    ///
    /// iPadOS 13+ Safari in its default "desktop website" mode sends a
    /// Macintosh User-Agent and is classified as desktop: nothing in the
    /// header tells them apart.
    pub fn classify(&self, user_agent: &str) -> DeviceClass {
        let (mut bot, mut ios, mut android) = (false, false, false);
        for m in self.automaton.find_overlapping_iter(user_agent) {
            match self.kinds[m.pattern().as_usize()] {
                Token::Bot => bot = true,
                Token::Ios => ios = true,
                Token::Android => android = true,
            }
        }
        let device = if android {
            Device::Android
        } else if ios {
            Device::Ios
        } else {
            Device::Desktop
        };
        DeviceClass { device, bot }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_user_agents() {
        let cases = [
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", Device::Ios, false),
            ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", Device::Ios, false),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 16_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone14,2]", Device::Ios, false),
            ("Instagram 290.0.0.13.76 (iPhone13,2; iOS 16_5; en_US; en-US; scale=3.00; 1170x2532; 494006385)", Device::Ios, false),
            ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", Device::Android, false),
            ("Mozilla/5.0 (Linux; Android 13; SM-S908B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36", Device::Android, false),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", Device::Desktop, false),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15", Device::Desktop, false),
            ("curl/8.4.0", Device::Desktop, false),
            ("", Device::Desktop, false),
            ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", Device::Desktop, true),
            ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", Device::Desktop, true),
            ("Twitterbot/1.0", Device::Desktop, true),
            ("WhatsApp/2.23.20.0 A", Device::Desktop, true),
            ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", Device::Desktop, true),
            ("Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", Device::Android, true),
        ];
        let c = Classifier::new().unwrap();
        for (ua, device, bot) in cases {
            assert_eq!(c.classify(ua), DeviceClass { device, bot }, "{ua}");
        }
    }
}
