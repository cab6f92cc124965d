/**
 * Localized errors through the compiled binary (README "Localized errors"): curl with
 * `Accept-Language: fr` and `ru` gets the same status, headers, `error` and `code` as without it,
 * `message` and `errors` in that language, as UTF-8 JSON whose Content-Length counts its bytes.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { ServerProcess } from './server-process'

setDefaultTimeout(30_000)

let server: ServerProcess
beforeAll(async () => {
  server = new ServerProcess()
  await server.addUser('201', 'Pw-201-secret')
  await server.start()
})
afterAll(() => server.cleanup())

interface CurlAnswer {
  status: number
  /** Lowercase names, in order, without the Date header (it changes between two answers). */
  headers: Array<[string, string]>
  bytes: Uint8Array
  body: Record<string, unknown>
}

/** `curl -si`: the answer exactly as it came off the wire. */
async function curl(...args: string[]): Promise<CurlAnswer> {
  const child = Bun.spawn(['curl', '-si', '--http1.1', ...args], { stdout: 'pipe', stderr: 'inherit' })
  const raw = new Uint8Array(await new Response(child.stdout).arrayBuffer())
  expect(await child.exited).toBe(0)
  const split = indexOfBlankLine(raw)
  const head = new TextDecoder().decode(raw.subarray(0, split)).split('\r\n')
  const bytes = raw.subarray(split + 4)
  const headers = head
    .slice(1)
    .map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()] as [string, string])
    .filter(([name]) => name !== 'date')
  const body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  return { status: Number(head[0]!.split(' ')[1]), headers, bytes, body }
}

function indexOfBlankLine(raw: Uint8Array): number {
  for (let i = 0; i + 3 < raw.length; i++) {
    if (raw[i] === 13 && raw[i + 1] === 10 && raw[i + 2] === 13 && raw[i + 3] === 10) return i
  }
  throw new Error('no end of headers')
}

const header = (answer: CurlAnswer, name: string) => answer.headers.find(([key]) => key === name)?.[1]
const withoutLength = (answer: CurlAnswer) => answer.headers.filter(([name]) => name !== 'content-length')

/** Each request as curl sends it, to which `-H 'Accept-Language: …'` is added. */
const REQUESTS: Record<string, () => string[]> = {
  'login with a number for username': () => [
    '-X', 'POST', `${server.baseUrl}/auth/login`, '-H', 'Content-Type: application/json', '--data', '{"username":201,"password":"Pw-201-secret"}',
  ],
  'login with a wrong password': () => [
    '-X', 'POST', `${server.baseUrl}/auth/login`, '-H', 'Content-Type: application/json', '--data', '{"username":"201","password":"wrong"}',
  ],
  'profile without a token': () => [`${server.baseUrl}/profile`],
  'an unknown path': () => [`${server.baseUrl}/nowhere`],
}

const LOCALIZED: Record<'fr' | 'ru', Record<string, { message: string; errors?: Record<string, string[]> }>> = {
  fr: {
    'login with a number for username': {
      message: 'Le champ username doit être une chaîne de caractères.',
      errors: { username: ['Le champ username doit être une chaîne de caractères.'] },
    },
    'login with a wrong password': { message: 'Identifiants invalides' },
    'profile without a token': { message: 'Non autorisé. Un jeton est requis' },
    'an unknown path': { message: 'Introuvable' },
  },
  ru: {
    'login with a number for username': {
      message: 'Поле username должно быть строкой.',
      errors: { username: ['Поле username должно быть строкой.'] },
    },
    'login with a wrong password': { message: 'Неверные учётные данные' },
    'profile without a token': { message: 'Требуется авторизация. Нужен токен' },
    'an unknown path': { message: 'Не найдено' },
  },
}

describe('curl in French and Russian', () => {
  for (const [name, args] of Object.entries(REQUESTS)) {
    test(name, async () => {
      const english = await curl(...args())
      expect(english.body.message).toBe(english.body.error)
      for (const language of ['fr', 'ru'] as const) {
        const answer = await curl(...args(), '-H', `Accept-Language: ${language}`)
        expect([language, answer.status]).toEqual([language, english.status])
        expect([language, withoutLength(answer)]).toEqual([language, withoutLength(english)])
        expect(header(answer, 'content-type')).toBe('application/json; charset=utf-8')
        expect(Number(header(answer, 'content-length'))).toBe(answer.bytes.length)
        const { message, errors, ...stable } = answer.body
        const { message: _english, errors: _englishErrors, ...englishStable } = english.body
        expect(stable.error).toBe(english.body.error)
        expect(stable.code).toBe(english.body.code)
        expect(Object.keys(stable)).toEqual(Object.keys(englishStable))
        const localized: unknown = { message, errors }
        expect(localized).toEqual(LOCALIZED[language][name])
      }
    })
  }

  test('a malformed or English Accept-Language gets the English body', async () => {
    // The timestamp is the real clock's second: it may tick between two requests.
    const untimed = (answer: CurlAnswer) => new TextDecoder().decode(answer.bytes).replace(/"timestamp":\d+/, '"timestamp":0')
    const english = await curl(...REQUESTS['an unknown path']!())
    for (const value of ['fr;q=5', 'en-US,en;q=0.9,fr;q=0.8', 'ru;q=0, *']) {
      const answer = await curl(...REQUESTS['an unknown path']!(), '-H', `Accept-Language: ${value}`)
      expect([value, untimed(answer)]).toEqual([value, untimed(english)])
    }
  })
})
