/** The compiled-in catalogues, chosen by a negotiated Language, never by a name taken from a request. */
import { de } from './de'
import { en, type Catalogue } from './en'
import { fr } from './fr'
import type { Language } from './negotiate'
import { ru } from './ru'

export const CATALOGUES: Readonly<Record<Language, Catalogue>> = { en, ru, fr, de }
