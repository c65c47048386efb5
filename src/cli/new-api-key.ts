// `npm run apikey:new [name]`: makes a new API key and prints it with its SHA-256 and the
// API_KEY_HASHES entry to configure. Nothing is stored: the key is shown this once.
import { newApiKey, API_KEY_NAME } from '../callers/api-keys.ts'

const name = process.argv[2] ?? 'key'

if (!API_KEY_NAME.test(name)) {
  process.stderr.write(`invalid name ${JSON.stringify(name.slice(0, 80))}: use 1 to 64 letters, digits, "_", "." or "-"\n`)
  process.exitCode = 2
} else {
  const { key, sha256, entry } = newApiKey(name)
  process.stdout.write(
    `New API key "${name}". Give the key to the client over a secure channel; it is not stored and cannot be shown again.\n` +
    '\n' +
    `key:    ${key}\n` +
    `sha256: ${sha256}\n` +
    '\n' +
    'Add this entry to API_KEY_HASHES (comma-separated) or as a line of API_KEY_HASHES_FILE:\n' +
    '\n' +
    `${entry}\n`
  )
}
