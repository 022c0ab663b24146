// Kurento's hello-world flow with the real kurento-client, against Prism.
//
//   node hello.js WS_URL OFFER_FILE
//
// Prints JSON lines on stdout: {"answer"}, then {"candidate"} as they come, then
// {"ready"} once gathering is done; waits for a line "release" on stdin, releases the
// pipeline and prints {"released"}. Errors: {"error"} and exit code 1.
'use strict';
const fs = require('fs');
const readline = require('readline');
const kurento = require('kurento-client');

const [url, offerFile] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (e) => { say({ error: String(e && e.message || e) }); process.exit(1); };

(async () => {
  const offer = fs.readFileSync(offerFile, 'utf8');
  const client = await kurento(url, { failAfter: 3 });
  const pipeline = await client.create('MediaPipeline');
  const endpoint = await pipeline.create('WebRtcEndpoint');
  endpoint.on('IceCandidateFound', (ev) => say({ candidate: ev.candidate, source: ev.source, type: ev.type }));
  endpoint.on('IceGatheringDone', () => say({ ready: true }));
  const iceStates = [];
  endpoint.on('IceComponentStateChanged', (ev) => iceStates.push(ev.state));
  let pair = null;
  endpoint.on('NewCandidatePairSelected', (ev) => { pair = ev.candidatePair; });
  await endpoint.connect(endpoint);
  const answer = await endpoint.processOffer(offer);
  say({ answer, pipeline: pipeline.id, endpoint: endpoint.id });
  await endpoint.gatherCandidates();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', async (line) => {
    if (line.trim() === 'flowing') {
      const flowing = await endpoint.isMediaFlowingIn('VIDEO');
      say({ flowingIn: flowing, iceStates, pair });
    } else if (line.trim() === 'release') {
      await pipeline.release();
      say({ released: true });
      client.close();
      process.exit(0);
    }
  });
})().catch(fail);
