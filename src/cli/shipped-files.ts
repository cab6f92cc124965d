/**
 * The files `install` writes, embedded in the binary from systemd/ (the one copy, also shipped in
 * the release tarball and used by the tests): README "Install".
 */
import configExample from '../../systemd/config.example.toml' with { type: 'text' }
import jail from '../../systemd/fail2ban/jail.d/softphone-backend.local' with { type: 'text' }
import filter from '../../systemd/fail2ban/filter.d/softphone-backend.conf' with { type: 'text' }
import logrotate from '../../systemd/logrotate/softphone-backend' with { type: 'text' }
import nginxHttp from '../../systemd/nginx-softphone-backend-http.conf' with { type: 'text' }
import nginxServer from '../../systemd/nginx-softphone-backend.conf' with { type: 'text' }
import unit from '../../systemd/softphone-backend.service' with { type: 'text' }

export const SHIPPED = {
  unit: unit as string,
  configExample: configExample as string,
  nginxHttp: nginxHttp as string,
  nginxServer: nginxServer as string,
  logrotate: logrotate as string,
  fail2banFilter: filter as string,
  fail2banJail: jail as string,
} as const
