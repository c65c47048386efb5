// The pre-encoded request body is exactly the JSON of the request object, whatever the instructions hold.
import t from 'tap'
import { chatRequest, encodeChatRequest } from '../src/vision/chat-request.ts'
import type { IdentifyRequest } from '../src/vision/types.ts'
import * as images from './support/images.ts'

t.test('encodeChatRequest equals JSON.stringify of the request with the data URL', async t => {
  const image = await images.png(20, 10)
  for (const instructions of ['Which tractor?', 'Quotes " and \\ backslashes, ünïcödé, 日本語, emoji 🚜, newline\nand the word agrivision-image-', '']) {
    const request: IdentifyRequest = {
      image, mimeType: 'image/png', width: 20, height: 10, detail: 'low', instructions, language: 'pt-BR', signal: new AbortController().signal
    }
    const encoded = encodeChatRequest('gpt-4o', request, 500)
    const expected = chatRequest('gpt-4o', request, 500, `data:image/png;base64,${image.toString('base64')}`)
    t.same(JSON.parse(encoded.toString('utf8')), expected, JSON.stringify(instructions).slice(0, 40))
  }
})

t.test('the image base64-encoded in pieces equals the whole encoded at once, at every length around a piece', async t => {
  for (const length of [1, 2, 3, 12_287, 12_288, 12_289, 12_290, 24_575, 24_576, 24_577, 100_003, 1_000_000]) {
    const image = Buffer.from(Array.from({ length }, (_, i) => (i * 7919 + (i >> 5)) & 0xff))
    const request: IdentifyRequest = {
      image, mimeType: 'image/jpeg', width: 1, height: 1, detail: 'auto', instructions: 'x', language: 'en', signal: new AbortController().signal
    }
    const encoded = JSON.parse(encodeChatRequest('gpt-4o', request, 500).toString('utf8'))
    t.equal(encoded.messages[1].content[1].image_url.url, `data:image/jpeg;base64,${image.toString('base64')}`, `${length} bytes`)
  }
})
