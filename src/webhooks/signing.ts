// Standard Webhooks signing with the maintained `standardwebhooks` package: `v1,<base64 HMAC-SHA256 of
// "id.timestamp.body">`, once per secret in force (after a rotation the old and the new, space separated,
// so a receiver still holding the old secret verifies until it has switched).
import { randomBytes } from 'node:crypto'
import { Webhook } from 'standardwebhooks'

/** `whsec_` and 32 random bytes, base64: the form Standard Webhooks libraries take. */
export function newSecret (): string {
  return `whsec_${randomBytes(32).toString('base64')}`
}

export interface SignedHeaders {
  'webhook-id': string
  'webhook-timestamp': string
  'webhook-signature': string
}

export function signedHeaders (messageId: string, at: Date, body: string, secrets: readonly string[]): SignedHeaders {
  const signatures = secrets.map(secret => new Webhook(secret).sign(messageId, at, body))
  return {
    'webhook-id': messageId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signatures.join(' ')
  }
}
