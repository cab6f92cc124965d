/** A PbxStateView the tests fill by hand, standing in for the state engine's cache. */
import type { AmiStatus } from '../src/pbx/ami/ami-link'
import type { ContactDetail, EndpointState, OutboundRegistration, PbxStateView } from '../src/pbx/pbx-state'

export class FakePbxState implements PbxStateView {
  ami: AmiStatus = 'up'
  stale = false
  readonly endpointMap = new Map<string, EndpointState>()
  readonly registrationMap = new Map<string, OutboundRegistration>()

  endpoints(): ReadonlyMap<string, EndpointState> {
    return this.endpointMap
  }

  registrations(): ReadonlyMap<string, OutboundRegistration> {
    return this.registrationMap
  }

  endpoint(name: string, deviceState: string, contacts: ContactDetail[] = []): this {
    this.endpointMap.set(name, { name, deviceState, contacts })
    return this
  }

  registration(objectName: string, status: string, serverUri: string, clientUri: string): this {
    this.registrationMap.set(objectName, { objectName, status, serverUri, clientUri })
    return this
  }
}

/** A registered contact as Asterisk's ContactStatusDetail event carries it. */
export function contact(aor: string, uri: string, extra: Record<string, string> = {}): ContactDetail {
  return {
    AOR: aor,
    URI: uri,
    UserAgent: 'TestPhone/2.0',
    RegExpire: '1795435800',
    ViaAddress: '192.0.2.10:5060',
    CallID: `call-${aor}`,
    Status: 'Reachable',
    RoundtripUsec: '12345',
    EndpointName: aor,
    ID: `${aor};@abc`,
    AuthenticateQualify: '0',
    OutboundProxy: '',
    Path: '',
    QualifyFrequency: '60',
    QualifyTimeout: '3.000000',
    ...extra,
  }
}
