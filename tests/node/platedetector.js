// Kurento's platedetector tutorial flow with the real kurento-client and the unmodified
// kurento-module-platedetector client module, against Prism.
//
//   node platedetector.js WS_URL OFFER_FILE
//
// Prints JSON lines on stdout: {"answer"}, {"candidate"} as they come, {"ready"} once
// gathering is done, then {"plate"} for every PlateDetected event. A line "release" on stdin
// releases the pipeline and prints {"released"}. Errors: {"error"} and exit code 1.
'use strict';
const fs = require('fs');
const readline = require('readline');
const kurento = require('kurento-client');

kurento.register('kurento-module-platedetector');

const [url, offerFile] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (e) => { say({ error: String(e && e.message || e) }); process.exit(1); };

(async () => {
  const offer = fs.readFileSync(offerFile, 'utf8');
  const client = await kurento(url, { failAfter: 3 });
  const pipeline = await client.create('MediaPipeline');
  const endpoint = await pipeline.create('WebRtcEndpoint');
  const filter = await pipeline.create('platedetector.PlateDetectorFilter');
  endpoint.on('IceCandidateFound', (ev) => say({ candidate: ev.candidate }));
  endpoint.on('IceGatheringDone', () => say({ ready: true }));
  filter.on('PlateDetected', (ev) => say({ plate: ev.plate, type: ev.type, source: ev.source }));
  await filter.setPlateWidthPercentage(0.3);
  await endpoint.connect(filter);
  await filter.connect(endpoint);
  const answer = await endpoint.processOffer(offer);
  say({ answer, filter: filter.id });
  await endpoint.gatherCandidates();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', async (line) => {
    if (line.trim() === 'release') {
      await pipeline.release();
      say({ released: true });
      client.close();
      process.exit(0);
    }
  });
})().catch(fail);
