/** Attack family: tampering with claims or the signature. */
import { afterAll, beforeAll, test } from 'bun:test'
import type { Harness } from '../../helpers'
import { battleground, decode, encode, expectRefused } from './battery'

let h: Harness
let access: string
beforeAll(async () => ({ h, tokens: { access_token: access } } = await battleground()))
afterAll(() => h.close())

const parts = () => access.split('.') as [string, string, string]

for (const [claim, value] of [
  ['role', 'superadmin'],
  ['username', '202'],
  ['type', 'refresh'],
  ['exp', 4102444800],
  ['sub', '2'],
  ['sid', 'AAAAAAAAAAAAAAAAAAAAAA'],
] as const) {
  test(`a tampered ${claim} claim keeps the old signature`, async () => {
    const [header, payload, signature] = parts()
    await expectRefused(h, `${header}.${encode({ ...decode(payload), [claim]: value })}.${signature}`, claim)
  })
}

test('a truncated, extended, emptied or zeroed signature', async () => {
  const [header, payload, signature] = parts()
  for (const forged of [signature.slice(0, -1), signature.slice(0, 20), `${signature}A`, '', 'A'.repeat(43)]) {
    await expectRefused(h, `${header}.${payload}.${forged}`, forged)
  }
})

test('the signature of another token', async () => {
  const other = (await h.login()).access_token.split('.')[2]!
  const [header, payload] = parts()
  await expectRefused(h, `${header}.${payload}.${other}`)
})
