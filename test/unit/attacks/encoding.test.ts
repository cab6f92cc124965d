/** Attack family: the serialisation. Only canonical compact JWS of at most 8 KiB is read. */
import { afterAll, beforeAll, test } from 'bun:test'
import { createHmac } from 'node:crypto'
import type { Harness } from '../../helpers'
import { battleground, encode, expectRefused, forge, REAL_KEY, validClaims } from './battery'

let h: Harness
let access: string
beforeAll(async () => ({ h, tokens: { access_token: access } } = await battleground()))
afterAll(() => h.close())

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
const sibling = (segment: string) => `${segment.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(segment.at(-1)!) ^ 1]}`

test('2, 4 and 5 segments', async () => {
  const [header, payload, signature] = access.split('.') as [string, string, string]
  for (const token of [`${header}.${payload}`, `${access}.${signature}`, `${access}.${signature}.${signature}`, `${header}..${signature}`]) {
    await expectRefused(h, token)
  }
})

test('padding, standard base64 characters and whitespace inside the token', async () => {
  const [header, payload, signature] = access.split('.') as [string, string, string]
  // Whitespace around a header value is HTTP's (RFC 9110 §5.5), not the token's, so it is trimmed
  // before we see it; whitespace inside is the token's and refused.
  for (const token of [`${access}=`, `${header}=.${payload}.${signature}`, `${header}.${payload}.${signature.slice(0, -1)}+`, `${header}.${payload}.${signature.slice(0, -1)}/`, `${header}.${payload}\t.${signature}`, `${header}. ${payload}.${signature}`]) {
    await expectRefused(h, token)
  }
})

test('a sibling last character on the signature (same bytes)', async () => {
  const [header, payload, signature] = access.split('.') as [string, string, string]
  await expectRefused(h, `${header}.${payload}.${sibling(signature)}`)
})

test('a non-canonical payload re-signed with the real key', async () => {
  let pad = ''
  while (encode(validClaims(h, { pad })).length % 4 === 0) pad += 'x'
  const payload = sibling(encode(validClaims(h, { pad })))
  const input = `${encode({ alg: 'HS256', typ: 'JWT' })}.${payload}`
  await expectRefused(h, `${input}.${createHmac('sha256', REAL_KEY).update(input).digest('base64url')}`)
})

test('JSON serialisation (RFC 7515 §7.2) instead of compact', async () => {
  const [header, payload, signature] = access.split('.') as [string, string, string]
  await expectRefused(h, JSON.stringify({ payload, signatures: [{ protected: header, signature }] }))
  await expectRefused(h, JSON.stringify({ protected: header, payload, signature }))
})

test('invalid UTF-8 in the header or payload, with a valid signature', async () => {
  const bad = Buffer.from([0x7b, 0x22, 0x61, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]).toString('base64url')
  for (const input of [`${bad}.${encode(validClaims(h))}`, `${encode({ alg: 'HS256' })}.${bad}`]) {
    await expectRefused(h, `${input}.${createHmac('sha256', REAL_KEY).update(input).digest('base64url')}`)
  }
})

test('duplicate claims and duplicate header parameters', async () => {
  const claims = JSON.stringify(validClaims(h)).slice(0, -1)
  await expectRefused(h, forge({ alg: 'HS256', typ: 'JWT' }, `${claims},"type":"refresh"}`))
  await expectRefused(h, forge({ alg: 'HS256', typ: 'JWT' }, `${claims},"username":"202"}`))
  await expectRefused(h, forge('{"alg":"none","alg":"HS256"}', validClaims(h)))
})

test('oversized tokens: a huge header, a huge payload', async () => {
  await expectRefused(h, forge({ alg: 'HS256', typ: 'JWT', kid: 'k'.repeat(9000) }, validClaims(h)))
  await expectRefused(h, forge({ alg: 'HS256', typ: 'JWT' }, validClaims(h, { pad: 'x'.repeat(9000) })))
})

test('non-object header or payload', async () => {
  for (const [header, payload] of [['[]', validClaims(h)], [{ alg: 'HS256' }, '[1]'], [{ alg: 'HS256' }, '"text"'], [{ alg: 'HS256' }, 'null']] as const) {
    await expectRefused(h, forge(header, payload))
  }
})
