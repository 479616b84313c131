// Oblivious HTTP (RFC 9458) written from the RFC on npm packages no one here wrote: @hpke/core (+ its
// ChaCha20-Poly1305 and X-Wing packages) for HPKE, bhttp-js for Binary HTTP. Nothing from litefaas.
//
//   node ohttp.mjs client GATEWAY_URL [RELAY_URL]   one JSON line per (key, algorithm, inner request)
//   node ohttp.mjs gateway PORT                     a gateway on 127.0.0.1:PORT until stdin closes
//
// The client sends each inner request of the JSON array on stdin ({method, url, headers, body_b64})
// through every key configuration and algorithm pair the gateway offers; the gateway answers each
// decapsulated request with JSON saying what it received.
import { createServer } from "node:http"
import { createHash, randomBytes } from "node:crypto"
import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core"
import { Chacha20Poly1305 } from "@hpke/chacha20poly1305"
import { XWing } from "@hpke/hybridkem-x-wing"
import { BHttpDecoder, BHttpEncoder } from "bhttp-js"

const REQUEST_LABEL = new TextEncoder().encode("message/bhttp request")
const RESPONSE_LABEL = new TextEncoder().encode("message/bhttp response")
const AEADS = { 1: [() => new Aes128Gcm(), 16], 2: [() => new Aes256Gcm(), 32], 3: [() => new Chacha20Poly1305(), 32] }
const KEMS = { 0x20: [() => new DhkemX25519HkdfSha256(), 32, 32], 0x647a: [() => new XWing(), 1216, 1120] }

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}
const u16 = (value) => new Uint8Array([value >> 8, value & 0xff])
const suiteOf = (kemId, kdfId, aeadId) => {
  if (kdfId !== 1) throw new Error(`KDF ${kdfId} is not HKDF-SHA256`)
  return new CipherSuite({ kem: KEMS[kemId][0](), kdf: new HkdfSha256(), aead: AEADS[aeadId][0]() })
}

// HKDF with SHA-256 on node:crypto's HMAC (@hpke/core's extract refuses a salt that is not hash-length).
const hmac = async (key, data) => {
  const { createHmac } = await import("node:crypto")
  return new Uint8Array(createHmac("sha256", key).update(data).digest())
}
const hkdfExpand = async (prk, info, length) => {
  let block = new Uint8Array(0)
  const blocks = []
  for (let counter = 1; blocks.length * 32 < length; counter++) {
    block = await hmac(prk, concat(block, info, new Uint8Array([counter])))
    blocks.push(block)
  }
  return concat(...blocks).slice(0, length)
}
const responseKeys = async (context, enc, responseNonce, aeadId) => {
  const keyLength = AEADS[aeadId][1]
  const secret = new Uint8Array(await context.export(RESPONSE_LABEL, Math.max(keyLength, 12)))
  const prk = await hmac(concat(enc, responseNonce), secret)
  return [await hkdfExpand(prk, new TextEncoder().encode("key"), keyLength), await hkdfExpand(prk, new TextEncoder().encode("nonce"), 12)]
}
const aeadOpen = async (aeadId, key, nonce, data, seal) => {
  const aead = AEADS[aeadId][0]()
  const ctx = aead.createEncryptionContext(key)
  return new Uint8Array(seal ? await ctx.seal(nonce, data, new Uint8Array(0)) : await ctx.open(nonce, data, new Uint8Array(0)))
}

function parseKeyConfigs(bytes) {
  const configs = []
  let offset = 0
  while (offset < bytes.length) {
    const length = (bytes[offset] << 8) | bytes[offset + 1]
    const config = bytes.slice(offset + 2, offset + 2 + length)
    const keyId = config[0]
    const kemId = (config[1] << 8) | config[2]
    const publicLength = KEMS[kemId][1]
    const publicKey = config.slice(3, 3 + publicLength)
    const pairsLength = (config[3 + publicLength] << 8) | config[4 + publicLength]
    const pairs = []
    for (let i = 5 + publicLength; i < 5 + publicLength + pairsLength; i += 4) {
      pairs.push([(config[i] << 8) | config[i + 1], (config[i + 2] << 8) | config[i + 3]])
    }
    configs.push({ keyId, kemId, publicKey, pairs })
    offset += 2 + length
  }
  return configs
}

async function client(gatewayUrl, relayUrl) {
  const inners = JSON.parse(await new Response(process.stdin).text())
  const keys = new Uint8Array(await (await fetch(relayUrl || gatewayUrl)).arrayBuffer())
  for (const config of parseKeyConfigs(keys)) {
    for (const [kdfId, aeadId] of config.pairs) {
      for (const inner of inners) {
        const suite = suiteOf(config.kemId, kdfId, aeadId)
        const header = concat(new Uint8Array([config.keyId]), u16(config.kemId), u16(kdfId), u16(aeadId))
        const sender = await suite.createSenderContext({
          recipientPublicKey: await suite.kem.deserializePublicKey(config.publicKey),
          info: concat(REQUEST_LABEL, new Uint8Array([0]), header),
        })
        const headers = { ...inner.headers }
        // A fetch Request may not carry Date in browsers; bhttp-js encodes what the Request holds.
        const request = new Request(inner.url, { method: inner.method, headers, body: inner.body_b64 ? Buffer.from(inner.body_b64, "base64") : undefined })
        const message = await new BHttpEncoder().encodeRequest(request)
        const sealed = new Uint8Array(await sender.seal(message))
        const enc = new Uint8Array(sender.enc)
        const answer = await fetch(relayUrl || gatewayUrl, { method: "POST", headers: { "content-type": "message/ohttp-req" }, body: concat(header, enc, sealed) })
        const body = new Uint8Array(await answer.arrayBuffer())
        const line = { key_id: config.keyId, kem_id: config.kemId, kdf_id: kdfId, aead_id: aeadId, outer_status: answer.status, outer_type: answer.headers.get("content-type") }
        if (answer.status === 200) {
          const nonceLength = Math.max(AEADS[aeadId][1], 12)
          const [key, nonce] = await responseKeys(sender, enc, body.slice(0, nonceLength), aeadId)
          const plain = await aeadOpen(aeadId, key, nonce, body.slice(nonceLength), false)
          const response = new BHttpDecoder().decodeResponse(plain)
          line.status = response.status
          line.headers = Object.fromEntries(response.headers.entries())
          line.body_b64 = Buffer.from(await response.arrayBuffer()).toString("base64")
          line.padded_length = plain.length
        }
        process.stdout.write(JSON.stringify(line) + "\n")
      }
    }
  }
}

async function gateway(port) {
  const suiteX = suiteOf(0x20, 1, 1)
  const pair = await suiteX.kem.generateKeyPair()
  const publicKey = new Uint8Array(await suiteX.kem.serializePublicKey(pair.publicKey))
  const keyId = 0x2a
  const pairs = [[1, 1], [1, 3]]
  const config = concat(new Uint8Array([keyId]), u16(0x20), publicKey, u16(pairs.length * 4), ...pairs.map(([k, a]) => concat(u16(k), u16(a))))
  const configs = concat(u16(config.length), config)
  const server = createServer(async (req, res) => {
    const chunks = []
    for await (const chunk of req) chunks.push(chunk)
    const body = new Uint8Array(Buffer.concat(chunks))
    if (req.method === "GET") {
      res.writeHead(200, { "content-type": "application/ohttp-keys" }).end(configs)
      return
    }
    try {
      const header = body.slice(0, 7)
      const kdfId = (header[3] << 8) | header[4]
      const aeadId = (header[5] << 8) | header[6]
      if (header[0] !== keyId || !pairs.some(([k, a]) => k === kdfId && a === aeadId)) {
        res.writeHead(400, { "content-type": "application/problem+json" }).end(JSON.stringify({ type: "https://iana.org/assignments/http-problem-types#ohttp-key" }))
        return
      }
      const suite = suiteOf(0x20, kdfId, aeadId)
      const enc = body.slice(7, 39)
      const recipient = await suite.createRecipientContext({ recipientKey: pair.privateKey, enc, info: concat(REQUEST_LABEL, new Uint8Array([0]), header) })
      const message = new Uint8Array(await recipient.open(body.slice(39)))
      const request = new BHttpDecoder().decodeRequest(message)
      const content = new Uint8Array(await request.arrayBuffer())
      const echo = {
        method: request.method,
        url: request.url,
        headers: Object.fromEntries(request.headers.entries()),
        content_sha256: createHash("sha256").update(content).digest("hex"),
        content_length: content.length,
        message_length: message.length,
      }
      const answer = await new BHttpEncoder().encodeResponse(new Response(JSON.stringify(echo), { status: 201, headers: { "content-type": "application/json" } }))
      const nonceLength = Math.max(AEADS[aeadId][1], 12)
      const responseNonce = new Uint8Array(randomBytes(nonceLength))
      const [key, nonce] = await responseKeys(recipient, enc, responseNonce, aeadId)
      res.writeHead(200, { "content-type": "message/ohttp-res" }).end(concat(responseNonce, await aeadOpen(aeadId, key, nonce, answer, true)))
    } catch (error) {
      res.writeHead(400, { "content-type": "text/plain" }).end("")
    }
  })
  server.listen(port, "127.0.0.1", () => process.stdout.write(`listening on 127.0.0.1:${port}\n`))
  process.stdin.on("end", () => server.close(() => process.exit(0)))
  process.stdin.resume()
}

const [mode, ...args] = process.argv.slice(2)
if (mode === "client") await client(args[0], args[1])
else if (mode === "gateway") await gateway(Number(args[0]))
else {
  process.stderr.write("usage: node ohttp.mjs client GATEWAY_URL [RELAY_URL] | gateway PORT\n")
  process.exit(2)
}
