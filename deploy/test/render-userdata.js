#!/usr/bin/env node
// render-userdata: prints the user data of a launch template the way CloudFormation would hand
// it to the instance: the Fn::Sub of LaunchTemplateData.UserData (inside Fn::Base64) with each
// ${Name} replaced by the value given as Name=VALUE (pseudo parameters too: AWS::Region=...),
// ${!Literal} as ${Literal}. A ${Name} without a value is an error, so a new variable in the
// template cannot slip past the user-data test (tests/deploy/userdata_test.sh).
//
// Usage: render-userdata.js TEMPLATE LOGICAL_ID [Name=VALUE]...
'use strict';

const fs = require('fs');
const YAML = require('yaml');

function main([file, id, ...pairs]) {
  if (!file || !id) { console.error('usage: render-userdata.js TEMPLATE LOGICAL_ID [Name=VALUE]...'); return 2; }
  const values = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) { console.error(`not Name=VALUE: ${p}`); return 2; }
    values[p.slice(0, eq)] = p.slice(eq + 1);
  }
  const doc = YAML.parseDocument(fs.readFileSync(file, 'utf8'));
  const resource = doc.getIn(['Resources', id], true);
  if (!resource) { console.error(`${file}: no resource ${id}`); return 1; }
  const userData = doc.getIn(['Resources', id, 'Properties', 'LaunchTemplateData', 'UserData'], true);
  const base64 = userData && YAML.isMap(userData) ? userData.get('Fn::Base64', true) : null;
  if (!base64 || base64.tag !== '!Sub') { console.error(`${id}: UserData is not Fn::Base64 of !Sub`); return 1; }
  const text = YAML.isSeq(base64) ? base64.items[0].value : base64.value;
  let missing = [];
  const out = text.replace(/\$\{([^}]*)\}/g, (whole, name) => {
    if (name.startsWith('!')) return '${' + name.slice(1) + '}';
    if (!(name in values)) { missing.push(name); return whole; }
    return values[name];
  });
  if (missing.length) { console.error(`${id}: no value for ${[...new Set(missing)].join(', ')}`); return 1; }
  process.stdout.write(out);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
