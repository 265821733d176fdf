// Runs inside the browser page (evaluated over CDP by chromium.test.ts; plain
// JavaScript, no imports; the file is one object expression).
// dataChannel: two RTCPeerConnections that may use relay candidates only,
// signalled to each other in the page, open a data channel, send `messages`
// messages each way and report what happened, with the selected candidate
// pair as getStats describes it. They stay open (their allocations with them)
// until close(). Never throws: a failure comes back as { ok: false, error }
// with everything seen so far.
// gather: one relay-only RTCPeerConnection gathers candidates until gathering
// completes (or `timeoutMs`) and reports them with the ICE candidate errors.
({
dataChannel: async ({ iceServers, messages, timeoutMs }) => {
  const events = [];
  const candidateErrors = [];
  const config = { iceServers, iceTransportPolicy: 'relay' };
  const a = new RTCPeerConnection(config);
  const b = new RTCPeerConnection(config);
  const pcs = { a, b };
  for (const [name, pc, other] of [['a', a, b], ['b', b, a]]) {
    pc.onicecandidate = (e) => {
      if (!e.candidate) return;
      events.push(`${name} candidate ${e.candidate.candidate}`);
      other.addIceCandidate(e.candidate).catch((err) => events.push(`${name} addIceCandidate failed: ${err}`));
    };
    pc.onicecandidateerror = (e) => candidateErrors.push({ pc: name, url: e.url, errorCode: e.errorCode, errorText: e.errorText });
    pc.oniceconnectionstatechange = () => events.push(`${name} ice ${pc.iceConnectionState}`);
    pc.onconnectionstatechange = () => events.push(`${name} connection ${pc.connectionState}`);
  }

  // The candidate pair ICE selected, with both candidates (RTCStats of each pc).
  const selectedPair = async (pc) => {
    const stats = await pc.getStats();
    let pair;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) return undefined;
    const pick = (c) => c && { candidateType: c.candidateType, protocol: c.protocol, relayProtocol: c.relayProtocol, address: c.address, port: c.port, url: c.url };
    return {
      state: pair.state,
      nominated: pair.nominated,
      bytesSent: pair.bytesSent,
      bytesReceived: pair.bytesReceived,
      local: pick(stats.get(pair.localCandidateId)),
      remote: pick(stats.get(pair.remoteCandidateId)),
    };
  };

  const run = async () => {
    const toB = a.createDataChannel('turnpike', { ordered: true });
    const atB = new Promise((resolve) => (b.ondatachannel = (e) => resolve(e.channel)));
    await a.setLocalDescription();
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription();
    await a.setRemoteDescription(b.localDescription);
    const open = (dc) => (dc.readyState === 'open' ? dc : new Promise((resolve) => dc.addEventListener('open', () => resolve(dc), { once: true })));
    const [dcA, dcB] = await Promise.all([open(toB), atB.then(open)]);
    events.push('data channel open');

    const receive = (dc) => {
      const got = [];
      return new Promise((resolve) => {
        dc.onmessage = (e) => {
          got.push(e.data);
          if (got.length === messages) resolve(got);
        };
      });
    };
    const gotAtB = receive(dcB);
    const gotAtA = receive(dcA);
    for (let i = 0; i < messages; i++) {
      dcA.send(`a->b ${i}`);
      dcB.send(`b->a ${i}`);
    }
    const [receivedByB, receivedByA] = await Promise.all([gotAtB, gotAtA]);
    return { receivedByA, receivedByB, selected: { a: await selectedPair(a), b: await selectedPair(b) } };
  };

  globalThis.openPeerConnections = [a, b];
  let timer;
  try {
    const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no open data channel with all messages within ${timeoutMs} ms`)), timeoutMs)));
    const result = await Promise.race([run(), timeout]);
    return { ok: true, ...result, events, candidateErrors };
  } catch (err) {
    const selected = { a: await selectedPair(a).catch(() => undefined), b: await selectedPair(b).catch(() => undefined) };
    return { ok: false, error: String(err), selected, events, candidateErrors, states: Object.fromEntries(Object.entries(pcs).map(([n, pc]) => [n, `${pc.iceGatheringState}/${pc.iceConnectionState}`])) };
  } finally {
    clearTimeout(timer);
  }
},

close: () => {
  for (const pc of globalThis.openPeerConnections ?? []) pc.close();
  globalThis.openPeerConnections = [];
  return true;
},

gather: async ({ iceServers, timeoutMs }) => {
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
  const candidates = [];
  const candidateErrors = [];
  pc.onicecandidateerror = (e) => candidateErrors.push({ url: e.url, errorCode: e.errorCode, errorText: e.errorText });
  const complete = new Promise((resolve) => {
    pc.onicecandidate = (e) => (e.candidate ? candidates.push(e.candidate.candidate) : resolve(true));
    setTimeout(() => resolve(false), timeoutMs);
  });
  pc.createDataChannel('gather');
  await pc.setLocalDescription();
  const completed = await complete;
  pc.close();
  return { completed, candidates, candidateErrors };
},
})
