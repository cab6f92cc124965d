import { expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { CONFIG_KEYS } from '../../src/config/schema'

test('the README documents every configuration key with its env variable and flag', () => {
  const readme = readFileSync('README.md', 'utf8')
  for (const key of Object.keys(CONFIG_KEYS)) {
    expect(readme).toContain(`| \`${key}\` | \`SOFTPHONE_${key.toUpperCase()}\` / \`--${key.replaceAll('_', '-')}\` |`)
  }
})

test('the example config names every key', () => {
  const example = readFileSync('systemd/config.example.toml', 'utf8')
  for (const key of Object.keys(CONFIG_KEYS)) expect(example).toMatch(new RegExp(`^# ${key} = `, 'm'))
})
