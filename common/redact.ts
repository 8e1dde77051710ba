// Credentials inside text: connection URLs end up in config errors and in client libraries' error messages.

// scheme://user:password@ up to the last @ before the path, so a password with an unescaped @ or : is hidden whole.
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/?)[^\s"'/]*@/gi

/**
 * Replaces the user and password of every URL in a text with ***: for config errors and log lines alike. Every match
 * holds `:/` and `@`, so a text without both is returned as it is without running the expression: an ECS line always
 * holds an `@` (its `@timestamp` key), which alone sent every request-log line through it (1% of the redirect's CPU
 * with observability on, in a profile).
 */
export function redactCredentials(text: string): string {
  return text.includes(':/') && text.includes('@') ? text.replace(URL_CREDENTIALS, '$1***@') : text
}
