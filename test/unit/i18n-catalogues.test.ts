/**
 * Message catalogues (README "Localized errors"): every language has exactly en's keys and
 * placeholders, en is the stable English of ERRORS, and each kind of valibot issue finds its text.
 */
import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { Elysia } from 'elysia'
import * as v from 'valibot'
import { ERRORS, errorBody, fieldErrors, type ErrorKind } from '../../src/http/errors'
import { httpPlugin, RouteIndex } from '../../src/http/http-plugin'
import { CATALOGUES } from '../../src/i18n/catalogues'
import { en } from '../../src/i18n/en'
import { localizedFieldErrors, localizeEnvelope, validationMessageOf } from '../../src/i18n/localize'
import { LANGUAGES, NEGOTIATION_LIMITS } from '../../src/i18n/negotiate'
import { ManualClock } from '../helpers'

const OTHERS = LANGUAGES.filter((language) => language !== 'en')
const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((match) => match[1]).sort()

describe('catalogues', () => {
  test('every language has exactly en\'s keys, in both sections', () => {
    for (const language of LANGUAGES) {
      const catalogue = CATALOGUES[language]
      expect([language, Object.keys(catalogue).sort()]).toEqual([language, Object.keys(en).sort()])
      expect([language, Object.keys(catalogue.errors).sort()]).toEqual([language, Object.keys(en.errors).sort()])
      expect([language, Object.keys(catalogue.validation).sort()]).toEqual([language, Object.keys(en.validation).sort()])
    }
  })

  test('en has a text for every ERRORS kind and nothing else, the same as its stable error text', () => {
    expect(Object.keys(en.errors).sort()).toEqual(Object.keys(ERRORS).sort())
    for (const [name, kind] of Object.entries(ERRORS)) expect([name, en.errors[name as keyof typeof ERRORS]]).toEqual([name, kind.error])
  })

  test('error texts are unique, so an envelope\'s kind is known from its error text', () => {
    const texts = Object.values(ERRORS).map((kind) => kind.error)
    expect(new Set(texts).size).toBe(texts.length)
  })

  test('every text is non-empty and has the same placeholders as en\'s', () => {
    for (const language of LANGUAGES) {
      const { errors, validation } = CATALOGUES[language]
      for (const [name, text] of Object.entries(errors)) {
        expect([language, name, text.trim().length > 0, placeholders(text)]).toEqual([language, name, true, []])
      }
      for (const [name, text] of Object.entries(validation)) {
        const expected = placeholders(en.validation[name as keyof typeof en.validation])
        expect([language, name, text.trim().length > 0, placeholders(text)]).toEqual([language, name, true, expected])
      }
    }
  })

  test('ru, fr and de are translations: no error text is left in English except technical names', () => {
    const untranslatable = new Set(['unsupportedContentType'])
    for (const language of OTHERS) {
      for (const [name, text] of Object.entries(CATALOGUES[language].errors)) {
        if (!untranslatable.has(name)) expect([language, name, text === en.errors[name as keyof typeof en.errors]]).toEqual([language, name, false])
      }
    }
  })
})

/** A small app with only the HTTP plugin and one route per ERRORS kind, answering that kind's envelope. */
function kindsApp() {
  const clock = new ManualClock()
  const routes = new RouteIndex()
  const app = new Elysia()
    .use(httpPlugin({ clock, routes }))
    .get('/kind/:name', ({ params, status, set }) => {
      const kind: ErrorKind = ERRORS[params.name as keyof typeof ERRORS]
      set.headers['retry-after'] = '7'
      return status(kind.status as 400, errorBody(kind, clock.seconds))
    })
  routes.load(app.routes)
  return app
}

describe('every ERRORS kind in every language', () => {
  test('keeps status, headers, success, error, code and timestamp; only message follows the language', async () => {
    const app = kindsApp()
    for (const [name, kind] of Object.entries(ERRORS)) {
      const english = await app.handle(new Request(`http://localhost/kind/${name}`))
      const englishText = await english.text()
      expect(JSON.parse(englishText).message).toBe(kind.error)
      for (const language of LANGUAGES) {
        const answer = await app.handle(new Request(`http://localhost/kind/${name}`, { headers: { 'accept-language': language } }))
        const text = await answer.text()
        const body = JSON.parse(text)
        expect([name, language, answer.status]).toEqual([name, language, kind.status])
        expect([...answer.headers]).toEqual([...english.headers])
        expect(Object.keys(body)).toEqual(['success', 'error', 'code', 'message', 'timestamp'])
        expect({ ...body, message: undefined }).toEqual({ ...JSON.parse(englishText), message: undefined })
        expect(body.message).toBe(CATALOGUES[language].errors[name as keyof typeof ERRORS])
        if (language === 'en') expect(text).toBe(englishText)
      }
    }
  })
})

describe('localizeEnvelope', () => {
  test('leaves anything but an untouched envelope of ours alone', () => {
    const fr = CATALOGUES.fr
    expect(localizeEnvelope(undefined, fr, undefined)).toBeNull()
    expect(localizeEnvelope([], fr, undefined)).toBeNull()
    expect(localizeEnvelope({ result: false, messages: { error: ['Not found'] } }, fr, undefined)).toBeNull()
    expect(localizeEnvelope({ success: true, error: 'Not found', message: 'Not found' }, fr, undefined)).toBeNull()
    expect(localizeEnvelope({ success: false, error: 'Something else', message: 'Something else' }, fr, undefined)).toBeNull()
    expect(localizeEnvelope({ success: false, error: 'Not found', message: 'Introuvable' }, fr, undefined)).toBeNull()
  })

  test('keeps extra fields such as request_id, and their order', () => {
    const body = errorBody(ERRORS.internal, 5, { request_id: 'r-1' })
    const localized = localizeEnvelope(body, CATALOGUES.de, undefined)
    expect(localized).toEqual({ ...body, message: 'Interner Serverfehler' })
    expect(Object.keys(localized!)).toEqual(Object.keys(body))
  })
})

const issuesOf = (schema: v.GenericSchema, value: unknown) => v.safeParse(schema, value).issues ?? []

describe('validation issues map to catalogue entries by kind, with the field name', () => {
  const rows: Array<[string, v.GenericSchema, unknown, string]> = [
    ['required', v.object({ username: v.string('must be a string') }), {}, 'Le champ username est obligatoire.'],
    ['unknown key', v.strictObject({ a: v.optional(v.string()) }), { extra: 1 }, "Le champ extra n'est pas autorisé."],
    ['string', v.object({ username: v.string('must be a string') }), { username: 5 }, 'Le champ username doit être une chaîne de caractères.'],
    ['number', v.object({ n: v.number() }), { n: 'x' }, 'Le champ n doit être un nombre.'],
    ['boolean', v.object({ b: v.boolean() }), { b: 1 }, 'Le champ b doit être true ou false.'],
    ['object', v.object({ o: v.object({}) }), { o: 1 }, 'Le champ o doit être un objet.'],
    ['array', v.object({ list: v.array(v.string()) }), { list: 1 }, 'Le champ list doit être une liste.'],
    ['array item', v.object({ list: v.array(v.string()) }), { list: [1] }, 'Le champ list.0 doit être une chaîne de caractères.'],
    ['picklist', v.object({ p: v.picklist(['a', 'b']) }), { p: 'c' }, 'Le champ p doit avoir une des valeurs autorisées.'],
    ['min length', v.object({ s: v.pipe(v.string(), v.minLength(3)) }), { s: 'ab' }, 'Le champ s doit contenir au moins 3 caractères.'],
    ['max length', v.object({ s: v.pipe(v.string(), v.maxLength(64, 'must be at most 64 characters')) }), { s: 'x'.repeat(65) }, 'Le champ s ne doit pas dépasser 64 caractères.'],
    ['min bytes', v.object({ s: v.pipe(v.string(), v.minBytes(4)) }), { s: 'é' }, 'Le champ s doit faire au moins 4 octets.'],
    ['max bytes', v.object({ password: v.pipe(v.string(), v.maxBytes(1024)) }), { password: 'x'.repeat(1025) }, 'Le champ password ne doit pas dépasser 1024 octets.'],
    ['min value', v.object({ n: v.pipe(v.number(), v.minValue(1)) }), { n: 0 }, 'Le champ n doit être supérieur ou égal à 1.'],
    ['max value', v.object({ n: v.pipe(v.number(), v.maxValue(500)) }), { n: 501 }, 'Le champ n doit être inférieur ou égal à 500.'],
    ['regex', v.object({ sid: v.pipe(v.string(), v.regex(/^x$/, 'must be a session id')) }), { sid: 'y' }, "Le format du champ sid n'est pas valide."],
    ['iso date', v.object({ date: v.pipe(v.string(), v.isoDate()) }), { date: 'soon' }, 'Le champ date doit être une date AAAA-MM-JJ.'],
    ['check', v.object({ c: v.pipe(v.string(), v.check(() => false)) }), { c: 'x' }, "La valeur du champ c n'est pas valide."],
    ['body not an object', v.pipe(v.custom(() => false, 'must be a JSON object'), v.object({})), [], 'Le corps de la requête doit être un objet JSON.'],
  ]
  for (const [name, schema, value, french] of rows) {
    test(name, () => {
      const issues = issuesOf(schema, value)
      const errors = localizedFieldErrors(issues, CATALOGUES.fr)
      expect(Object.values(errors).flat()).toEqual([french])
      expect(Object.keys(errors)).toEqual(Object.keys(fieldErrors(issues)))
    })
  }

  test('a limit is shown only when the schema gives a number', () => {
    expect(validationMessageOf({ message: 'x', path: [{ key: 'a' }], type: 'max_length', requirement: 64 })).toEqual({ message: 'maxLength', limit: 64 })
    expect(validationMessageOf({ message: 'x', path: [{ key: 'a' }], type: 'max_length', requirement: '64' })).toEqual({ message: 'invalid' })
    expect(validationMessageOf({ message: 'x', path: [{ key: 'a' }] })).toEqual({ message: 'invalid' })
  })

  test('issues a schema words alike stay one text, as in English; different ones stay apart', () => {
    const DATE = 'must be a date YYYY-MM-DD'
    const schema = v.object({ date: v.pipe(v.string(DATE), v.isoDate(DATE), v.check(() => false, DATE)) })
    const issues = issuesOf(schema, { date: '2026-13-01' })
    expect(issues.length).toBe(2)
    expect(fieldErrors(issues)).toEqual({ date: [DATE] })
    expect(localizedFieldErrors(issues, CATALOGUES.ru)).toEqual({ date: ['Поле date должно быть датой в формате ГГГГ-ММ-ДД.'] })
    const two = issuesOf(v.object({ a: v.number(), b: v.string() }), { a: 'x', b: 1 })
    expect(localizedFieldErrors(two, CATALOGUES.de)).toEqual({ a: ['Das Feld a muss eine Zahl sein.'], b: ['Das Feld b muss eine Zeichenkette sein.'] })
  })

  test('never carries the submitted value, in any language', () => {
    const secret = 'hunter2-{field}-secret'
    const schema = v.object({ password: v.pipe(v.string(), v.maxLength(4), v.regex(/^\d+$/)) })
    for (const language of LANGUAGES) {
      const text = JSON.stringify(localizedFieldErrors(issuesOf(schema, { password: secret }), CATALOGUES[language]))
      expect(text).not.toContain('hunter2')
    }
  })

  test('a field name that looks like a placeholder is written as it is', () => {
    const issues = issuesOf(v.strictObject({}), { '{limit}': 1 })
    expect(localizedFieldErrors(issues, CATALOGUES.de)).toEqual({ '{limit}': ['Das Feld {limit} ist nicht erlaubt.'] })
  })
})

test('the README section states the languages and the limits the negotiation enforces', () => {
  const readme = readFileSync('README.md', 'utf8')
  const start = readme.indexOf('\n## Localized errors\n')
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1))
  expect(start).toBeGreaterThan(0)
  for (const language of LANGUAGES) expect(section).toContain(`\`${language}\``)
  expect(section).toContain(`over ${NEGOTIATION_LIMITS.headerChars} characters`)
  expect(section).toContain(`more than\n  ${NEGOTIATION_LIMITS.ranges} ranges`)
})
