/**
 * Localized errors through the real app (README "Localized errors"): the same status, headers,
 * `error` and `code` in every language; `message` and `errors` in the negotiated one; and without
 * Accept-Language the very bytes the legacy module's clients get.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { LANGUAGES, type Language } from '../../src/i18n/negotiate'
import { BASE, bearer, createHarness, type Harness } from '../helpers'

let h: Harness
beforeAll(async () => {
  h = await createHarness()
  await h.directory.add({ username: '201', password: 'secret-201', displayName: 'Alice', role: 'user', mobile: '' })
})
afterAll(() => h.close())

const language = (tag: string | null): RequestInit => ({ headers: tag === null ? {} : { 'accept-language': tag } })
const read = async (response: Response) => ({ status: response.status, headers: [...response.headers], text: await response.text() })
const stable = (text: string) => {
  const { message: _message, errors: _errors, ...rest } = JSON.parse(text)
  return rest
}

/** Four refusals of different origins: a body schema, the auth macro, the router's 404 and its 405. */
const REFUSALS: Record<string, (init: RequestInit) => Promise<Response>> = {
  'login validation failure': (init) => h.json(`${BASE}/auth/login`, { username: 201, password: 'x'.repeat(1025) }, init),
  '401 without a token': (init) => h.request(`${BASE}/profile`, init),
  '404 unknown path': (init) => h.request(`${BASE}/no-such-route`, init),
  '405 wrong method': (init) => h.request(`${BASE}/auth/login`, { ...init, method: 'GET' }),
}

const EXPECTED: Record<string, Record<Language, { message: string; errors?: Record<string, string[]> }>> = {
  'login validation failure': {
    en: { message: 'Validation failed', errors: { username: ['must be a string'], password: ['must be at most 1024 bytes'] } },
    fr: {
      message: 'Le champ username doit être une chaîne de caractères.',
      errors: { username: ['Le champ username doit être une chaîne de caractères.'], password: ['Le champ password ne doit pas dépasser 1024 octets.'] },
    },
    ru: {
      message: 'Поле username должно быть строкой.',
      errors: { username: ['Поле username должно быть строкой.'], password: ['Поле password должно занимать не более 1024 байт.'] },
    },
    de: {
      message: 'Das Feld username muss eine Zeichenkette sein.',
      errors: { username: ['Das Feld username muss eine Zeichenkette sein.'], password: ['Das Feld password darf höchstens 1024 Bytes lang sein.'] },
    },
  },
  '401 without a token': {
    en: { message: 'Unauthorized. Token required' },
    fr: { message: 'Non autorisé. Un jeton est requis' },
    ru: { message: 'Требуется авторизация. Нужен токен' },
    de: { message: 'Nicht autorisiert. Ein Token ist erforderlich' },
  },
  '404 unknown path': {
    en: { message: 'Not found' },
    fr: { message: 'Introuvable' },
    ru: { message: 'Не найдено' },
    de: { message: 'Nicht gefunden' },
  },
  '405 wrong method': {
    en: { message: 'Method not allowed' },
    fr: { message: 'Méthode non autorisée' },
    ru: { message: 'Метод не разрешён' },
    de: { message: 'Methode nicht erlaubt' },
  },
}

describe('a refusal in each language', () => {
  for (const [name, send] of Object.entries(REFUSALS)) {
    test(`${name}: message and errors follow the language, nothing else does`, async () => {
      const english = await read(await send(language(null)))
      for (const tag of LANGUAGES) {
        const answer = await read(await send(language(tag)))
        expect([tag, answer.status]).toEqual([tag, english.status])
        expect([tag, answer.headers]).toEqual([tag, english.headers])
        expect([tag, stable(answer.text)]).toEqual([tag, stable(english.text)])
        const { message, errors } = JSON.parse(answer.text)
        const localized: unknown = { tag, message, errors }
        expect(localized).toEqual({ tag, ...EXPECTED[name]![tag] })
      }
    })
  }

  test('each keeps its status and headers: 400, 401 with the bare challenge, 404, 405 with Allow', async () => {
    const answers = await Promise.all(Object.values(REFUSALS).map((send) => send(language('fr'))))
    expect(answers.map((answer) => answer.status)).toEqual([400, 401, 404, 405])
    expect(answers[1]!.headers.get('www-authenticate')).toBe('Bearer realm="softphone"')
    expect(answers[3]!.headers.get('allow')).toBe('POST')
  })
})

/** French first, then ranges that are each well-formed: only the header's size makes it fall back to en. */
const OVER_1_KIB = ['fr', ...Array.from({ length: 31 }, () => 'zz-aaaaaaaa-bbbbbbbb-cccccccc-d')].join(', ')
const OVER_32_RANGES = ['fr', ...Array.from({ length: 32 }, () => 'es')].join(',')

describe('without Accept-Language, or when it picks en, bodies are the legacy bytes', () => {
  test('the long headers are what they claim', () => {
    expect(OVER_1_KIB.length).toBeGreaterThan(1024)
    expect(OVER_1_KIB.split(',').length).toBe(32)
    expect(OVER_32_RANGES.split(',').length).toBe(33)
  })

  const LEGACY: Record<string, string> = {
    'login validation failure':
      '{"success":false,"error":"Validation failed","code":"validation_failed","message":"Validation failed","timestamp":1795435200,"errors":{"username":["must be a string"],"password":["must be at most 1024 bytes"]}}',
    '401 without a token': '{"success":false,"error":"Unauthorized. Token required","code":"token_required","message":"Unauthorized. Token required","timestamp":1795435200}',
    '404 unknown path': '{"success":false,"error":"Not found","code":"not_found","message":"Not found","timestamp":1795435200}',
    '405 wrong method': '{"success":false,"error":"Method not allowed","code":"method_not_allowed","message":"Method not allowed","timestamp":1795435200}',
  }
  for (const [name, send] of Object.entries(REFUSALS)) {
    test(name, async () => {
      for (const tag of [null, 'en', 'en-GB', '*', 'es', 'fr;q=2', 'fr;q=0', OVER_1_KIB, OVER_32_RANGES]) {
        expect([tag, (await read(await send(language(tag)))).text]).toEqual([tag, LEGACY[name]!])
      }
    })
  }
})

describe('what is not an error envelope of ours stays as it was', () => {
  test('a successful login and profile are the same bytes in French', async () => {
    const french = language('fr')
    const tokens = await h.login()
    const profile = async (init: RequestInit) => read(await h.request(`${BASE}/profile`, { headers: { ...bearer(tokens.access_token), ...init.headers } }))
    expect(await profile(french)).toEqual(await profile(language(null)))
    const login = await h.json(`${BASE}/auth/login`, { username: '201', password: 'secret-201' }, french)
    expect(login.status).toBe(200)
    expect(Object.keys(await login.json())).toContain('access_token')
  })

  test('check-media-access answers 401 in French with the same status and challenge as in English', async () => {
    const media = (init: RequestInit) => h.request(`${BASE}/check-media-access`, init)
    const english = await read(await media(language(null)))
    const french = await read(await media(language('fr-CA,fr;q=0.9')))
    expect(french.status).toBe(401)
    expect(french.headers).toEqual(english.headers)
    expect(JSON.parse(french.text)).toEqual({ ...JSON.parse(english.text), message: 'Non autorisé. Un jeton est requis' })
  })

  test('a wrong bearer token in Russian: same 401, code and challenge', async () => {
    const send = (tag: string | null) => h.request(`${BASE}/profile`, { headers: { ...bearer('not-a-token'), ...language(tag).headers } })
    const english = await read(await send(null))
    const russian = await read(await send('ru'))
    expect(russian.status).toBe(english.status)
    expect(russian.headers).toEqual(english.headers)
    expect(JSON.parse(russian.text)).toEqual({ ...JSON.parse(english.text), message: 'Требуется авторизация' })
  })

  test('a query validation error names its field in German', async () => {
    const tokens = await h.login()
    const answer = await h.request(`${BASE}/history?date=2026-13-01`, { headers: { ...bearer(tokens.access_token), 'accept-language': 'de-AT' } })
    expect(answer.status).toBe(400)
    expect(await answer.json()).toMatchObject({
      error: 'Validation failed',
      code: 'validation_failed',
      message: 'Das Feld date muss ein Datum im Format JJJJ-MM-TT sein.',
      errors: { date: ['Das Feld date muss ein Datum im Format JJJJ-MM-TT sein.'] },
    })
  })
})
