/** `install` writes the files of systemd/ embedded in the binary (README "Install"): the same bytes, no second copy. */
import { expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { SHIPPED } from '../../src/cli/shipped-files'

test('every embedded file is its systemd/ file, byte for byte', () => {
  const sources: Record<keyof typeof SHIPPED, string> = {
    unit: 'softphone-backend.service',
    configExample: 'config.example.toml',
    nginxHttp: 'nginx-softphone-backend-http.conf',
    nginxServer: 'nginx-softphone-backend.conf',
    logrotate: 'logrotate/softphone-backend',
    fail2banFilter: 'fail2ban/filter.d/softphone-backend.conf',
    fail2banJail: 'fail2ban/jail.d/softphone-backend.local',
  }
  for (const [name, file] of Object.entries(sources)) {
    expect({ name, text: SHIPPED[name as keyof typeof SHIPPED] }).toEqual({ name, text: readFileSync(`systemd/${file}`, 'utf8') })
  }
})
