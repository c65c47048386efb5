// pino options: JSON lines; credentials redacted wherever a header could end up in a log object, and
// query strings never logged as sent: a credential a client put in the URL (`?api_key=`, `?access_token=`,
// `?code=` ...) would otherwise land in every request log line. Parameter names are kept (they help
// debugging), values are replaced: in the request's `url`, in message strings (Fastify's "Route GET:/x?…
// not found") and in error messages and stacks.
import { stdSerializers, type LoggerOptions } from 'pino'

const SECRET_HEADERS = ['authorization', 'x-api-key', 'x-identity-header', 'cookie', 'api-key']
const REDACTED = '[redacted]'

/** A query parameter name safe to log as it is (short and plain); anything else may itself be a secret. */
const PLAIN_NAME = /^[A-Za-z][\w.[\]-]{0,39}$/

/** The query string with every value replaced (names kept when plain). */
export function redactQuery (query: string): string {
  if (query === '') return query
  return query.split('&').map(pair => {
    const eq = pair.indexOf('=')
    const name = eq === -1 ? pair : pair.slice(0, eq)
    if (name === '' && eq === -1) return ''
    const shownName = PLAIN_NAME.test(name) && !looksLikeCredential(name) ? name : REDACTED
    return eq === -1 ? shownName : `${shownName}=${REDACTED}`
  }).join('&')
}

/** A URL or path with its query values redacted (and any fragment dropped). */
export function redactUrl (url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return url
  const hash = url.indexOf('#', q)
  return `${url.slice(0, q)}?${redactQuery(url.slice(q + 1, hash === -1 ? undefined : hash))}`
}

/** Every URL-looking `/path?query` in a free text, its query values redacted. */
export function redactUrlsInText (text: string): string {
  if (!text.includes('?')) return text
  return text.replace(/(\/[^\s?#"'<>]*)\?([^\s#"'<>]*)/g, (_match, path: string, query: string) => `${path}?${redactQuery(query)}`)
}

/** An API key of ours (agv_…) or a JWT (header.payload.…): never logged, wherever it appears. */
export function looksLikeCredential (text: string): boolean {
  return /agv_[\w-]{16,}/.test(text) || /eyJ[\w-]{8,}\.[\w-]{8,}/.test(text)
}

interface LoggedRequest {
  method?: string
  url?: string
  host?: string
  ip?: string
  headers?: Record<string, unknown>
  socket?: { remotePort?: number }
}

export function loggerOptions (config: { logLevel: LoggerOptions['level'] }): LoggerOptions {
  return {
    level: config.logLevel,
    // A `headers` object logged as such. A request's headers never reach a line: the `req` serializer below keeps
    // none (redaction paths under `req` ran on every access line and could never match: ~2 us and ~3 KB of garbage
    // a request, @pinojs/redact parsing each path on each call).
    redact: {
      paths: SECRET_HEADERS.map(h => `headers["${h}"]`),
      censor: REDACTED
    },
    serializers: {
      // Fastify's own request serializer, with the query values redacted (Fastify uses ours over its own).
      req (req: LoggedRequest) {
        return {
          method: req.method,
          url: typeof req.url === 'string' ? redactUrl(req.url) : req.url,
          version: req.headers?.['accept-version'],
          host: req.host,
          remoteAddress: req.ip,
          remotePort: req.socket?.remotePort
        }
      },
      err (err: Error) {
        const serialized = stdSerializers.err(err)
        if (typeof serialized.message === 'string') serialized.message = redactUrlsInText(serialized.message)
        if (typeof serialized.stack === 'string') serialized.stack = redactUrlsInText(serialized.stack)
        return serialized
      }
    },
    hooks: {
      // Message strings, e.g. Fastify's "Route GET:/nowhere?token=… not found".
      logMethod (args, method) {
        for (let i = 0; i < args.length; i++) {
          const arg = args[i]
          if (typeof arg === 'string' && arg.includes('?')) args[i] = redactUrlsInText(arg)
        }
        return method.apply(this, args)
      }
    }
  }
}
