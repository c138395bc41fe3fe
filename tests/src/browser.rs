//! A real browser for the UI tests: Debian's Chromium, headless, driven
//! over WebDriver by chromedriver (fantoccini speaks WebDriver). `.ci/run`
//! installs both; without them the tests say so and are skipped, unless
//! `MARKETER_REQUIRE_BROWSER` is set (as CI sets it), when they fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The axe-core version `.ci/run` installs.
pub const AXE_VERSION: &str = "4.14.1";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process and a headless Chromium session through it.
#[derive(Debug)]
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (the test is skipped) without Chromium and chromedriver,
    /// unless they are required.
    pub async fn start() -> Option<Self> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var_os("MARKETER_REQUIRE_BROWSER").is_none(),
                "MARKETER_REQUIRE_BROWSER is set but {CHROMIUM} or {CHROMEDRIVER} is missing: apt-get install chromium chromium-driver"
            );
            eprintln!("skipping: install chromium and chromium-driver to run the browser tests");
            return None;
        }
        let port = crate::free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // The machine's network is closed: no background traffic.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }
        });
        let capabilities = capabilities.as_object().cloned().unwrap_or_default();
        // WebDriver here is plain HTTP on loopback, but fantoccini builds a
        // rustls client anyway, and with the whole workspace's features
        // rustls cannot pick a provider by itself.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::rustls()
                .expect("a TLS connector")
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("could not start a Chromium session: {e}"),
            }
        };
        Some(Self { client, driver, _profile: profile })
    }

    /// Signs in through the sign-in page of the server at `base_url` and
    /// waits for the dashboard.
    pub async fn sign_in(&self, base_url: &str, email: &str, password: &str) {
        self.goto(&format!("{base_url}/login")).await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("form button[type=submit]").await;
        crate::eventually(Duration::from_secs(10), "the dashboard after signing in", || async {
            self.path().await.starts_with("/t/").then_some(())
        })
        .await;
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The element `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Whether `css` is on the page now.
    pub async fn has(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Chooses the file at `path` in the file input `css`.
    pub async fn attach(&self, css: &str, path: &std::path::Path) {
        let input = self.find(css).await;
        let path = path.to_str().expect("a UTF-8 path");
        input.send_keys(path).await.unwrap_or_else(|e| panic!("attach {path} to {css}: {e}"));
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap_or_default()
    }

    /// The page's URL path.
    pub async fn path(&self) -> String {
        self.client.current_url().await.map(|u| u.path().to_owned()).unwrap_or_default()
    }

    /// Waits until `check` holds for the page's text (polling).
    pub async fn wait_for_text(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if check(&text) {
                return text;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; {css} says: {text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Accepts the page's `confirm()` dialog.
    pub async fn accept_dialog(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.client.accept_alert().await {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("no dialog to accept: {e}"),
            }
        }
    }

    /// Runs an asynchronous script in the page: it calls `arguments[0]`
    /// with its result (WebDriver's convention).
    pub async fn script(&self, source: &str) -> serde_json::Value {
        self.client.execute_async(source, Vec::new()).await.unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Evaluates `return <expression>` in the page.
    pub async fn eval(&self, expression: &str) -> serde_json::Value {
        self.client
            .execute(&format!("return {expression};"), Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{expression} failed: {e}"))
    }

    /// The text of `css` including what is hidden (collapsed details,
    /// inactive tabs), which WebDriver's visible text leaves out.
    pub async fn text_content(&self, css: &str) -> String {
        let selector = serde_json::Value::String(css.to_owned());
        self.eval(&format!("document.querySelector({selector})?.textContent ?? ''"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Makes a request from the page with its cookies (`fetch`), and
    /// returns `{status, type, body}`.
    pub async fn fetch(&self, method: &str, url: &str, headers: serde_json::Value) -> serde_json::Value {
        let (method, url) = (serde_json::Value::from(method), serde_json::Value::from(url));
        self.script(&format!(
            "const done = arguments[0];
             fetch({url}, {{ method: {method}, headers: {headers}, credentials: 'same-origin', redirect: 'manual' }})
               .then(r => r.text().then(body => done({{ status: r.status, type: r.headers.get('content-type'), body }})))
               .catch(e => done({{ status: 0, type: '', body: String(e) }}));"
        ))
        .await
    }

    /// Saves a screenshot of the page, and holds the page to WCAG 2.2 AA
    /// with axe-core at the current width (every page a test photographs
    /// is checked, at every width it is photographed at).
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        self.assert_accessible(name).await;
        path
    }

    /// Runs axe-core on the page (WCAG 2.0, 2.1 and 2.2, A and AA, and
    /// best practices) and fails on any violation that `tests/axe-allow.json`
    /// does not list with its reason. axe is injected by the driver: the
    /// pages' Content-Security-Policy allows no inline script.
    pub async fn assert_accessible(&self, name: &str) {
        let Some(script) = axe_script() else {
            assert!(
                std::env::var_os("MARKETER_REQUIRE_BROWSER").is_none(),
                "MARKETER_REQUIRE_BROWSER is set but axe-core is missing: \
                 npm install --prefix target/axe axe-core@{AXE_VERSION} (.ci/run does)"
            );
            return;
        };
        let loaded = self.eval("typeof window.axe === 'object'").await;
        if loaded != serde_json::Value::Bool(true) {
            self.client
                .execute(&format!("{script}\n;return true;"), Vec::new())
                .await
                .unwrap_or_else(|e| panic!("axe-core did not load on {name}: {e}"));
        }
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] }, resultTypes: ['violations'] })\
                 .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help, \
                   targets: v.nodes.slice(0, 6).map(n => n.target.join(' ') + ' :: ' + (n.failureSummary || '').split('\\n').slice(1, 2).join(' ')) }))))\
                 .catch(e => done([{ id: 'axe-error', impact: 'critical', help: String(e), targets: [] }]));",
                Vec::new(),
            )
            .await
            .unwrap_or_else(|e| panic!("axe-core did not run on {name}: {e}"));
        let allowed = axe_allowed();
        let mut violations = Vec::new();
        for violation in found.as_array().into_iter().flatten() {
            let id = violation["id"].as_str().unwrap_or_default();
            let targets: Vec<&str> =
                violation["targets"].as_array().into_iter().flatten().filter_map(|t| t.as_str()).collect();
            let open: Vec<&str> = targets
                .iter()
                .copied()
                .filter(|target| {
                    !allowed
                        .iter()
                        .any(|a| a.rule == id && target.contains(&a.target) && name.contains(&a.page))
                })
                .collect();
            if !open.is_empty() || targets.is_empty() {
                violations.push(format!(
                    "{id} ({}): {}\n    {}",
                    violation["impact"].as_str().unwrap_or("?"),
                    violation["help"].as_str().unwrap_or_default(),
                    open.join("\n    ")
                ));
            }
        }
        assert!(
            violations.is_empty(),
            "{name}: axe-core found {} violation(s):\n{}",
            violations.len(),
            violations.join("\n")
        );
    }

    /// At a tablet's width (768 px) the page needs no sideways scrolling;
    /// saves a screenshot, then goes back to the desktop size.
    pub async fn assert_fits_tablet(&self, name: &str) {
        self.client.set_window_size(768, 1024).await.expect("resize the window");
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.screenshot(name).await;
        let overflow =
            self.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
        assert!(overflow.as_i64().is_some_and(|o| o <= 0), "{name}: {overflow} px wider than a tablet");
        self.client.set_window_size(1280, 1000).await.expect("resize the window");
    }

    /// Checks that the current page does not scroll sideways on a phone
    /// (390 px wide), saves a screenshot, then goes back to the desktop size.
    /// Returns how many scrolling boxes it checked.
    pub async fn assert_fits_phone(&self, name: &str) -> usize {
        self.client.set_window_size(390, 844).await.expect("resize the window");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let fits = self.phone_checks(name).await;
        self.client.set_window_size(1280, 1000).await.expect("resize the window");
        fits.unwrap_or_else(|problem| panic!("{problem}"))
    }

    /// The whole accessibility check of the page as it is now: axe-core at
    /// the desktop width (with a screenshot), then at a phone's width axe
    /// again, no sideways scrolling, and every scrolling box reachable with
    /// Tab and scrollable with the arrow keys. Leaves the desktop size.
    /// Returns how many scrolling boxes it checked at each width.
    pub async fn check_page(&self, name: &str) -> (usize, usize) {
        self.screenshot(name).await;
        let desktop = self.assert_scroll_boxes_work(name).await;
        let phone = self.assert_fits_phone(&format!("{name}-phone")).await;
        (desktop, phone)
    }

    /// At the current size: a screenshot with axe, then no sideways
    /// scrolling and working scroll boxes. An error says what is wrong.
    async fn phone_checks(&self, name: &str) -> Result<usize, String> {
        self.screenshot(name).await;
        let overflow =
            self.eval("document.documentElement.scrollWidth - document.documentElement.clientWidth").await;
        if overflow.as_i64().is_none_or(|o| o > 0) {
            // What sticks out, to say where to look.
            let culprits = self
                .eval(
                    "Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > \
                     document.documentElement.clientWidth + 1 && !e.closest('table')?.parentElement?.closest('table')) \
                     .slice(0, 8).map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className + ' ' + \
                     Math.round(e.getBoundingClientRect().right)).join(', ')",
                )
                .await;
            return Err(format!("{name}: {overflow} px wider than a phone: {culprits}"));
        }
        Ok(self.assert_scroll_boxes_work(name).await)
    }

    /// Every box on the page that scrolls (content wider or taller than the
    /// box, `overflow` auto or scroll) is a stop of its own in the Tab order
    /// (Tab from the focusable element before it lands on it), and the
    /// arrow keys scroll it once it has focus (WCAG 2.1.1). Text fields and
    /// lists scroll by themselves and are left out. Returns how many boxes
    /// it checked.
    pub async fn assert_scroll_boxes_work(&self, name: &str) -> usize {
        let boxes = self
            .eval(
                "(() => { \
                   const scrolls = (e) => { const s = getComputedStyle(e); \
                     const x = e.scrollWidth > e.clientWidth + 1 && /auto|scroll/.test(s.overflowX); \
                     const y = e.scrollHeight > e.clientHeight + 1 && /auto|scroll/.test(s.overflowY); \
                     return x ? 'x' : y ? 'y' : ''; }; \
                   const found = []; \
                   for (const e of document.querySelectorAll('body *')) { \
                     if (/^(TEXTAREA|SELECT|INPUT)$/.test(e.tagName) || !e.checkVisibility({ visibilityProperty: true })) continue; \
                     const axis = scrolls(e); \
                     if (axis) { e.dataset.scrollBox = String(found.length); \
                       found.push({ axis, what: e.tagName + (e.id ? '#' + e.id : '') + (e.getAttribute('aria-label') ? ' \"' + e.getAttribute('aria-label') + '\"' : '') }); } \
                   } \
                   return found; })()",
            )
            .await;
        let boxes = boxes.as_array().cloned().unwrap_or_default();
        for (index, scroll_box) in boxes.iter().enumerate() {
            let what = scroll_box["what"].as_str().unwrap_or_default();
            let horizontal = scroll_box["axis"] == "x";
            // Focus the tab stop before the box (or nothing), then press Tab.
            let before = self
                .eval(&format!(
                    "(() => {{ \
                       const target = document.querySelector('[data-scroll-box=\"{index}\"]'); \
                       const stops = Array.from(document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]')) \
                         .filter(e => e.tabIndex >= 0 && !e.disabled && e.type !== 'hidden' && !e.closest('[inert]') \
                           && e.checkVisibility({{ visibilityProperty: true }})); \
                       const at = stops.indexOf(target); \
                       if (at < 0) return 'not a tab stop'; \
                       if (at === 0) {{ document.activeElement?.blur(); return ''; }} \
                       stops[at - 1].focus(); \
                       return document.activeElement === stops[at - 1] ? '' : 'the element before it cannot be focused'; \
                     }})()"
                ))
                .await;
            assert_eq!(before, "", "{name}: the scrolling box {what} cannot be reached with the keyboard");
            self.press(fantoccini::key::Key::Tab.into()).await;
            let focused =
                self.eval(&format!("document.activeElement?.dataset?.scrollBox === '{index}'")).await;
            assert_eq!(focused, true, "{name}: Tab did not move to the scrolling box {what}");
            let position = if horizontal { "scrollLeft" } else { "scrollTop" };
            let read = format!("document.activeElement.{position}");
            // From the start, whatever the page scrolled it to (a draft
            // that follows the text as it streams in sits at the end).
            self.eval(&format!("document.activeElement.{position} = 0")).await;
            let start = self.eval(&read).await.as_f64().unwrap_or_default();
            let arrow = if horizontal { fantoccini::key::Key::Right } else { fantoccini::key::Key::Down };
            for _ in 0..3 {
                self.press(arrow.into()).await;
            }
            let moved = eventually_value(
                || async { self.eval(&read).await.as_f64().unwrap_or_default() },
                |v| *v > start,
            )
            .await;
            assert!(
                moved > start,
                "{name}: the arrow keys do not scroll the box {what} ({position} stayed {start})"
            );
        }
        boxes.len()
    }

    /// Presses and releases one key, sent to whatever has focus (WebDriver
    /// actions, as a keyboard does).
    pub async fn press(&self, key: char) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let keys = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.unwrap_or_else(|e| panic!("press {key:?}: {e}"));
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The value `read` gives once `done` holds for it, or the last one after
/// two seconds (scrolling by key is smooth and takes a moment).
async fn eventually_value<T, F, Fut>(read: F, done: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let value = read().await;
        if done(&value) || Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `target/ui-screenshots`, next to the binaries.
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("ui-screenshots"), |target| target.join("ui-screenshots"))
}

/// axe-core's script: `MARKETER_AXE_SCRIPT`, or where `.ci/run` installs it
/// (`target/axe/node_modules/axe-core/axe.min.js` in the workspace).
fn axe_script() -> Option<&'static str> {
    static SCRIPT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    SCRIPT
        .get_or_init(|| {
            let path = std::env::var_os("MARKETER_AXE_SCRIPT").map_or_else(
                || {
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../target/axe/node_modules/axe-core/axe.min.js")
                },
                PathBuf::from,
            );
            std::fs::read_to_string(path).ok()
        })
        .as_deref()
}

/// A violation axe reports that is not one: the rule, where (a part of the
/// element's selector), on which pages (a part of the screenshot's name;
/// empty for all), and why it is not a violation.
#[derive(Debug, serde::Deserialize)]
struct Allowed {
    rule: String,
    target: String,
    #[serde(default)]
    page: String,
    #[allow(dead_code)] // read by people: every entry must say why
    reason: String,
}

fn axe_allowed() -> &'static [Allowed] {
    static ALLOWED: std::sync::OnceLock<Vec<Allowed>> = std::sync::OnceLock::new();
    ALLOWED.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("axe-allow.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}
