// Credentials inside text: connection URLs end up in config errors and in client libraries' error messages.

// scheme://user:password@ up to the last @ before the path, so a password with an unescaped @ or : is hidden whole.
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/?)[^\s"'/]*@/gi

/** Replaces the user and password of every URL in a text with ***: for config errors and log lines alike. */
export function redactCredentials(text: string): string {
  return text.includes('@') ? text.replace(URL_CREDENTIALS, '$1***@') : text
}
