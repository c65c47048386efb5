// The queue owner's identifier (web/src/owner.ts), in Node: the plain-JavaScript SHA-256 used where the page has no
// crypto.subtle (plain http on a LAN address) agrees with node:crypto on every length around the block boundaries,
// and an API key's owner is stable, distinct per key, and neither the key nor the hash API_KEY_HASHES holds.
import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import { sha256Hex as serverKeyHash } from '../src/callers/api-keys.ts'
import { apiKeyOwner, entraOwner, sha256, sha256Hex } from '../web/src/owner.ts'

t.test('the fallback SHA-256 matches node:crypto', async t => {
  let mismatches = 0
  for (let length = 0; length <= 200; length++) {
    const bytes = randomBytes(length)
    if (Buffer.from(sha256(bytes)).toString('hex') !== createHash('sha256').update(bytes).digest('hex')) mismatches++
  }
  const large = randomBytes(100_003)
  t.equal(Buffer.from(sha256(large)).toString('hex'), createHash('sha256').update(large).digest('hex'), 'a large input')
  t.equal(mismatches, 0, 'every length from 0 to 200 bytes')
  t.equal(await sha256Hex('ключ 🔑'), createHash('sha256').update('ключ 🔑', 'utf8').digest('hex'), 'UTF-8, through crypto.subtle')
})

t.test('an API key\'s owner: stable, one per key, not the key and not its server-side hash', async t => {
  const key = 'agv_owner-test-key-0123456789'
  const owner = await apiKeyOwner(key)
  t.match(owner, /^apikey:[0-9a-f]{32}$/)
  t.equal(await apiKeyOwner(key), owner, 'the same key: the same owner (sign in again)')
  t.not(await apiKeyOwner(`${key}x`), owner, 'another key: another owner')
  t.notOk(owner.includes(key.slice(4, 12)), 'no part of the key')
  t.notOk(serverKeyHash(key).startsWith(owner.slice('apikey:'.length)), 'not the hash the server is configured with')
  t.equal(entraOwner('oid.tid'), 'entra:oid.tid')
})
