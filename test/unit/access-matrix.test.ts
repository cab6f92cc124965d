import { describe, expect, test } from 'bun:test'

// Filled in by the access matrix work (README "Who may call what"); a placeholder keeps citations valid.
describe.todo('access matrix', () => {})
