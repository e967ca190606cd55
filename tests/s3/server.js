// Local S3 server for lakevault's tests: s3rver on 127.0.0.1, an ephemeral port and a given
// data folder, with the test bucket created up front. Prints "PORT <n>" once it answers, and
// exits when its stdin closes so a crashed test run never leaves it behind.
//
//   node server.js <data-dir> <bucket>
'use strict';

const S3rver = require('s3rver');

const [directory, bucket] = process.argv.slice(2);
if (!directory || !bucket) {
  console.error('usage: node server.js <data-dir> <bucket>');
  process.exit(2);
}

const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory,
  // Virtual-hosted requests arrive as <bucket>.s3.localhost.
  serviceEndpoint: 'localhost',
  configureBuckets: [{ name: bucket }],
});

server.run().then(
  (address) => {
    process.stdout.write(`PORT ${address.port}\n`);
  },
  (err) => {
    console.error(`s3rver failed to start: ${err}`);
    process.exit(1);
  },
);

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
