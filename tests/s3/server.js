// Local S3 server for lakevault's tests: s3rver on 127.0.0.1, an ephemeral port and a given
// data folder, with the test bucket created up front. Prints "PORT <n>" once it answers, and
// exits when its stdin closes so a crashed test run never leaves it behind.
//
//   node server.js <data-dir> <bucket>
'use strict';

const crypto = require('crypto');
const path = require('path');
const fs = require('fs');
const { Transform, pipeline } = require('stream');
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');

// S3 stores an object (or a part) only once its whole body has arrived, and answers 200 once it
// is stored. s3rver 3.7.1 writes the body straight into the object's file and answers as soon as
// it has read the body, before the file is written. So a PUT cut off by a killed client left a
// partial object, and two PUTs of one key (a killed run's bytes still arriving, the next run's
// retry) wrote into the same file at once: an object not matching its .sha256 in the upload kill
// campaign, under load. Each body goes to a file of its own, renamed over the object when whole.
let incoming = 0;
function storeWhole(target, content) {
  const temporary = `${target}.incoming-${process.pid}-${++incoming}`;
  const md5 = crypto.createHash('md5');
  let size = 0;
  const count = new Transform({
    transform(chunk, encoding, done) {
      md5.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  return new Promise((resolve, reject) => {
    const source = Buffer.isBuffer(content) ? [content] : content;
    pipeline(source, count, fs.createWriteStream(temporary), (err) => {
      if (err) {
        fs.promises.rm(temporary, { force: true }).finally(() => reject(err));
        return;
      }
      fs.promises.rename(temporary, target).then(() => resolve([size, md5.digest('hex')]), reject);
    });
  });
}

FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
  const [size, md5] = await storeWhole(objectPath, object.content);
  await this.putMetadata(object.bucket, object.key, object.metadata, md5);
  return { size, md5 };
};

FilesystemStore.prototype.putPart = async function putPart(bucket, uploadId, partNumber, content) {
  const partPath = path.join(
    this.getResourcePath(bucket, undefined, 'uploads'),
    uploadId,
    partNumber.toString(),
  );
  await fs.promises.mkdir(path.dirname(partPath), { recursive: true });
  const [size, md5] = await storeWhole(partPath, content);
  await fs.promises.writeFile(`${partPath}.md5`, md5);
  return { size, md5 };
};

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
