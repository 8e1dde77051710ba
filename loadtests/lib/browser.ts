// The user agent load traffic sends on the redirect. Load stands for people following links, and the redirect
// records no click for a crawler or a bare HTTP client (isbot's list, service/usecases/redirect.ts), which k6's own
// user agent is. Imported by the k6 scripts (here and ops/lib/drills/k6) and by the Node tests.
export const BROWSER_USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36'
