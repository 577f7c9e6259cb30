#!/usr/bin/env node
// cfn-check: validates CloudFormation YAML templates against the CloudFormation resource
// specification that @aws-cdk/aws-service-spec carries (the database the AWS CDK generates its
// L1 constructs from), with no AWS account:
//
//   - the YAML parses, short tags (!Ref, !GetAtt, !Sub, !If, ...) included, and each tag is one
//     CloudFormation knows;
//   - every resource type exists; every property (nested ones too) exists, has the right shape
//     (scalar, list, map, object) and every required property is set;
//   - every !Ref names a parameter, resource or pseudo parameter; every !GetAtt a resource and an
//     attribute its type has; every ${...} of !Sub one of those or a variable of its map; every
//     !If / Condition a condition; every !FindInMap a mapping (and its keys, for each allowed
//     value of a parameter that picks one); every DependsOn a resource;
//   - every !ImportValue an export that exists: one of the account's infra stacks' exports
//     (INFRA_EXPORTS), or an output of one of the checked templates deployed under the stack
//     name --stack gives it (the names deploy/Makefile uses, with the prefix PREFIX);
//   - every parameter is used; defaults are among the allowed values;
//   - no account id and no region name is written in the template (they come from
//     AWS::AccountId and AWS::Region), and the template starts with a comment that documents it.
//
// Usage: cfn-check.js [--stack NAME=FILE]... FILE...   (exit 0: no error; 1: errors listed)
'use strict';

const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const YAML = require('yaml');

// The exports of sjakthol/aws-account-infra's infra-vpc (and its subnets) and infra-buckets
// stacks that the templates may import by default.
const INFRA_EXPORTS = new Set([
  'infra-vpc-VpcId',
  'infra-vpc-sn-public-a',
  'infra-vpc-sn-public-b',
  'infra-vpc-sn-private-a',
  'infra-vpc-sn-private-b',
  'infra-vpc-sn-private-with-endpoints-a',
  'infra-vpc-sn-private-with-endpoints-b',
  'infra-buckets-BuildResourcesBucket',
  'infra-buckets-LogBucket',
]);
const PREFIX = 'PREFIX';

const PSEUDO = new Set(['AWS::AccountId', 'AWS::NotificationARNs', 'AWS::NoValue', 'AWS::Partition',
  'AWS::Region', 'AWS::StackId', 'AWS::StackName', 'AWS::URLSuffix']);
const SHORT = {
  Ref: 'Ref', Condition: 'Condition', GetAtt: 'Fn::GetAtt', Sub: 'Fn::Sub', ImportValue: 'Fn::ImportValue',
  If: 'Fn::If', Equals: 'Fn::Equals', Not: 'Fn::Not', And: 'Fn::And', Or: 'Fn::Or',
  Join: 'Fn::Join', Select: 'Fn::Select', Split: 'Fn::Split', FindInMap: 'Fn::FindInMap',
  Base64: 'Fn::Base64', GetAZs: 'Fn::GetAZs', Cidr: 'Fn::Cidr', Length: 'Fn::Length',
  ToJsonString: 'Fn::ToJsonString',
};
const FUNCTIONS = new Set(Object.values(SHORT));
const TOP_LEVEL = new Set(['AWSTemplateFormatVersion', 'Description', 'Metadata', 'Parameters', 'Rules',
  'Mappings', 'Conditions', 'Transform', 'Resources', 'Outputs']);
const PARAMETER_TYPES = /^(String|Number|List<Number>|CommaDelimitedList|AWS::[A-Za-z0-9:]+|List<AWS::[A-Za-z0-9:]+>|AWS::SSM::Parameter::Value<.+>)$/;
const RESOURCE_KEYS = new Set(['Type', 'Properties', 'DependsOn', 'Condition', 'DeletionPolicy',
  'UpdateReplacePolicy', 'UpdatePolicy', 'CreationPolicy', 'Metadata']);
const POLICIES = new Set(['Delete', 'Retain', 'RetainExceptOnCreate', 'Snapshot']);
// Intrinsics whose value is a list (where a property wants one).
const LIST_FUNCTIONS = new Set(['Fn::GetAZs', 'Fn::Split', 'Fn::Cidr', 'Fn::If', 'Ref', 'Fn::GetAtt',
  'Fn::FindInMap', 'Fn::ImportValue', 'Fn::Select']);

// --- the specification -------------------------------------------------------------------------
function loadSpec() {
  const file = require.resolve('@aws-cdk/aws-service-spec/db.json.gz');
  const db = JSON.parse(zlib.gunzipSync(fs.readFileSync(file)));
  const resources = new Map();
  for (const r of Object.values(db.schema.resource.entities)) resources.set(r.cloudFormationType, r);
  const types = {};
  for (const t of Object.values(db.schema.typeDefinition.entities)) types[t.$id] = t;
  return { resources, types };
}

// --- YAML with CloudFormation's short tags -----------------------------------------------------
function toJs(node, errors, where) {
  if (node === null || node === undefined) return null;
  if (YAML.isAlias(node)) { errors.push(`${where}: YAML aliases are not used in templates`); return null; }
  let value;
  if (YAML.isScalar(node)) value = node.value;
  else if (YAML.isMap(node)) {
    value = {};
    for (const pair of node.items) {
      const key = YAML.isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (Object.prototype.hasOwnProperty.call(value, key)) errors.push(`${where}: duplicate key ${key}`);
      value[key] = toJs(pair.value, errors, `${where}/${key}`);
    }
  } else if (YAML.isSeq(node)) value = node.items.map((n, i) => toJs(n, errors, `${where}/${i}`));
  else { errors.push(`${where}: unexpected YAML node`); return null; }
  if (node.tag && node.tag.startsWith('!')) {
    const fn = SHORT[node.tag.slice(1)];
    if (!fn) { errors.push(`${where}: unknown tag ${node.tag}`); return value; }
    if (fn === 'Fn::GetAtt' && typeof value === 'string') {
      const dot = value.indexOf('.');
      value = dot < 0 ? [value] : [value.slice(0, dot), value.slice(dot + 1)];
    }
    return { [fn]: value };
  }
  return value;
}

function parseTemplate(file, errors) {
  const text = fs.readFileSync(file, 'utf8');
  const doc = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: false });
  for (const e of doc.errors) errors.push(`YAML: ${e.message.split('\n')[0]}`);
  for (const w of doc.warnings) {
    const m = /^Unresolved tag: !(\w+)/.exec(w.message);
    if (!m || !SHORT[m[1]]) errors.push(`YAML: ${w.message.split('\n')[0]}`);
  }
  return { text, template: toJs(doc.contents, errors, '') };
}

// --- checks ------------------------------------------------------------------------------------
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
function intrinsicOf(v) {
  if (!isObject(v)) return null;
  const keys = Object.keys(v);
  if (keys.length === 1 && (FUNCTIONS.has(keys[0]) || keys[0].startsWith('Fn::'))) return keys[0];
  return null;
}

class Checker {
  constructor(spec, file, template, exportsKnown) {
    this.spec = spec;
    this.file = file;
    this.t = template;
    this.errors = [];
    this.exportsKnown = exportsKnown;
    this.params = isObject(template.Parameters) ? template.Parameters : {};
    this.resources = isObject(template.Resources) ? template.Resources : {};
    this.conditions = isObject(template.Conditions) ? template.Conditions : {};
    this.mappings = isObject(template.Mappings) ? template.Mappings : {};
    this.usedParams = new Set();
  }

  err(where, msg) { this.errors.push(`${where}: ${msg}`); }

  // Walks any value, checking every intrinsic in it. subVars: names a Fn::Sub map defines.
  value(v, where, subVars) {
    if (Array.isArray(v)) { v.forEach((x, i) => this.value(x, `${where}/${i}`, subVars)); return; }
    if (!isObject(v)) {
      if (typeof v === 'string' && /\{\{resolve:/.test(v)) this.dynamicRef(v, where);
      return;
    }
    const fn = intrinsicOf(v);
    if (!fn) { for (const [k, x] of Object.entries(v)) this.value(x, `${where}/${k}`, subVars); return; }
    const arg = v[fn];
    const at = `${where}/${fn}`;
    switch (fn) {
      case 'Ref':
        if (typeof arg !== 'string') { this.err(at, 'Ref takes a name'); break; }
        this.refName(arg, at);
        break;
      case 'Condition':
        if (typeof arg !== 'string' || !(arg in this.conditions)) this.err(at, `no condition ${JSON.stringify(arg)}`);
        break;
      case 'Fn::GetAtt':
        if (!Array.isArray(arg) || arg.length !== 2 || typeof arg[0] !== 'string') { this.err(at, 'GetAtt takes [resource, attribute]'); break; }
        if (typeof arg[1] !== 'string') { this.value(arg[1], at, subVars); this.getAtt(arg[0], null, at); break; }
        this.getAtt(arg[0], arg[1], at);
        break;
      case 'Fn::Sub': this.sub(arg, at); break;
      case 'Fn::ImportValue': this.importValue(arg, at); break;
      case 'Fn::If':
        if (!Array.isArray(arg) || arg.length !== 3 || typeof arg[0] !== 'string') { this.err(at, 'If takes [condition, then, else]'); break; }
        if (!(arg[0] in this.conditions)) this.err(at, `no condition ${arg[0]}`);
        this.value(arg[1], `${at}/1`, subVars);
        this.value(arg[2], `${at}/2`, subVars);
        break;
      case 'Fn::FindInMap': this.findInMap(arg, at); break;
      case 'Fn::Join':
        if (!Array.isArray(arg) || arg.length !== 2 || typeof arg[0] !== 'string') this.err(at, 'Join takes [delimiter, list]');
        this.value(arg, at, subVars);
        break;
      case 'Fn::Select':
        if (!Array.isArray(arg) || arg.length !== 2) this.err(at, 'Select takes [index, list]');
        this.value(arg, at, subVars);
        break;
      case 'Fn::Split':
        if (!Array.isArray(arg) || arg.length !== 2 || typeof arg[0] !== 'string') this.err(at, 'Split takes [delimiter, string]');
        this.value(arg, at, subVars);
        break;
      case 'Fn::Equals':
        if (!Array.isArray(arg) || arg.length !== 2) this.err(at, 'Equals takes two values');
        this.value(arg, at, subVars);
        break;
      case 'Fn::Not': case 'Fn::And': case 'Fn::Or':
        if (!Array.isArray(arg) || (fn === 'Fn::Not' ? arg.length !== 1 : arg.length < 2)) this.err(at, `${fn} takes a list of conditions`);
        this.value(arg, at, subVars);
        break;
      case 'Fn::Base64': case 'Fn::GetAZs': case 'Fn::Cidr': case 'Fn::Length': case 'Fn::ToJsonString':
        this.value(arg, at, subVars);
        break;
      default:
        this.err(at, `unknown intrinsic function ${fn}`);
    }
  }

  refName(name, at) {
    if (name in this.params) { this.usedParams.add(name); return; }
    if (name in this.resources || PSEUDO.has(name)) return;
    this.err(at, `Ref to ${name}, which is no parameter, resource or pseudo parameter`);
  }

  getAtt(resource, attribute, at) {
    const r = this.resources[resource];
    if (!isObject(r)) { this.err(at, `GetAtt of ${resource}, which is no resource`); return; }
    const spec = this.spec.resources.get(r.Type);
    if (!spec || attribute === null) return;
    if (!(attribute in (spec.attributes || {}))) {
      this.err(at, `${r.Type} has no attribute ${attribute} (it has: ${Object.keys(spec.attributes || {}).join(', ')})`);
    }
  }

  sub(arg, at) {
    let text;
    let vars = {};
    if (typeof arg === 'string') text = arg;
    else if (Array.isArray(arg) && arg.length === 2 && typeof arg[0] === 'string' && isObject(arg[1])) {
      [text, vars] = arg;
      for (const [k, x] of Object.entries(vars)) this.value(x, `${at}/${k}`);
    } else { this.err(at, 'Sub takes a string or [string, map]'); return; }
    for (const m of text.matchAll(/\$\{([^}]*)\}/g)) {
      const name = m[1];
      if (name.startsWith('!')) continue;
      if (name in vars) continue;
      const dot = name.indexOf('.');
      if (dot > 0 && !name.startsWith('AWS::')) this.getAtt(name.slice(0, dot), name.slice(dot + 1), at);
      else this.refName(name, at);
    }
    if (/\{\{resolve:/.test(text)) this.dynamicRef(text, at);
  }

  dynamicRef(text, at) {
    for (const m of text.matchAll(/\{\{resolve:([a-z-]+):/g)) {
      if (!['ssm', 'ssm-secure', 'secretsmanager'].includes(m[1])) this.err(at, `unknown dynamic reference ${m[1]}`);
    }
  }

  // The export names an Fn::ImportValue may ask for: parameter defaults (or PREFIX) filled in.
  importValue(arg, at) {
    let names;
    if (typeof arg === 'string') names = [arg];
    else if (intrinsicOf(arg) === 'Fn::Sub' && typeof arg['Fn::Sub'] === 'string') {
      this.sub(arg['Fn::Sub'], at);
      names = [arg['Fn::Sub'].replace(/\$\{([^}]*)\}/g, (whole, name) => {
        if (name === 'StackNamePrefix') return PREFIX;
        const p = this.params[name];
        if (p && p.Default !== undefined) return String(p.Default);
        return whole;
      })];
    } else { this.value(arg, at); this.err(at, 'ImportValue of an expression this checker cannot follow'); return; }
    for (const name of names) {
      if (!this.exportsKnown.has(name)) this.err(at, `no stack exports ${name}`);
    }
  }

  findInMap(arg, at) {
    if (!Array.isArray(arg) || arg.length !== 3) { this.err(at, 'FindInMap takes [map, key, key]'); return; }
    const [map, k1, k2] = arg;
    this.value(arg, at);
    if (typeof map !== 'string' || !isObject(this.mappings[map])) { this.err(at, `no mapping ${JSON.stringify(map)}`); return; }
    const firstKeys = typeof k1 === 'string' ? [k1]
      : (intrinsicOf(k1) === 'Ref' && this.params[k1.Ref] && this.params[k1.Ref].AllowedValues) || null;
    for (const key of firstKeys || []) {
      const level = this.mappings[map][key];
      if (!isObject(level)) { this.err(at, `mapping ${map} has no key ${key}`); continue; }
      if (typeof k2 === 'string' && !(k2 in level)) this.err(at, `mapping ${map}.${key} has no key ${k2}`);
    }
  }

  // A property value against its type in the specification.
  typed(v, type, where) {
    if (v === null || v === undefined) { this.err(where, 'empty value'); return; }
    const fn = intrinsicOf(v);
    if (fn === 'Fn::If' && Array.isArray(v[fn]) && v[fn].length === 3) {
      for (const branch of [v[fn][1], v[fn][2]]) {
        if (isObject(branch) && branch.Ref === 'AWS::NoValue') continue;
        this.typed(branch, type, `${where}/Fn::If`);
      }
      return;
    }
    if (fn) return; // other intrinsics: checked by value(); their result's shape is the stack's.
    switch (type.type) {
      case 'string': case 'number': case 'integer': case 'boolean': case 'date-time':
        if (isObject(v) || Array.isArray(v)) this.err(where, `wants a ${type.type}, not ${Array.isArray(v) ? 'a list' : 'an object'}`);
        else if ((type.type === 'integer' || type.type === 'number') && typeof v === 'string' && !/^-?\d+(\.\d+)?$/.test(v)) this.err(where, `wants a ${type.type}, not ${JSON.stringify(v)}`);
        else if (type.type === 'boolean' && typeof v === 'string' && !/^(true|false)$/i.test(v)) this.err(where, `wants a boolean, not ${JSON.stringify(v)}`);
        return;
      case 'json':
        return;
      case 'array':
        if (!Array.isArray(v)) { this.err(where, 'wants a list'); return; }
        v.forEach((x, i) => this.typed(x, type.element, `${where}/${i}`));
        return;
      case 'map':
        if (!isObject(v)) { this.err(where, 'wants a map'); return; }
        for (const [k, x] of Object.entries(v)) this.typed(x, type.element, `${where}/${k}`);
        return;
      case 'tag':
        this.object(v, { properties: { Key: { type: { type: 'string' }, required: true }, Value: { type: { type: 'string' }, required: true } } }, where);
        return;
      case 'ref':
        this.object(v, this.spec.types[type.reference.$ref], where);
        return;
      case 'union': {
        // Accept the value when one of the alternatives takes it without an error.
        const saved = this.errors;
        for (const alt of type.types) {
          this.errors = [];
          this.typed(v, alt, where);
          if (this.errors.length === 0) { this.errors = saved; return; }
        }
        this.errors = saved;
        this.err(where, 'matches none of the types the property takes');
        return;
      }
      default:
        this.err(where, `unknown specification type ${type.type}`);
    }
  }

  object(v, def, where) {
    if (!isObject(v)) { this.err(where, `wants an object${def && def.name ? ` (${def.name})` : ''}`); return; }
    if (!def) return;
    const props = def.properties || {};
    for (const [k, x] of Object.entries(v)) {
      if (!(k in props)) { this.err(`${where}/${k}`, `no property ${k}${def.name ? ` in ${def.name}` : ''}`); continue; }
      this.typed(x, props[k].type, `${where}/${k}`);
    }
    for (const [k, p] of Object.entries(props)) {
      if (p.required && !(k in v)) this.err(where, `required property ${k} is missing`);
    }
  }

  run(text, stackName) {
    const t = this.t;
    if (!isObject(t)) { this.err(this.file, 'not a template'); return; }
    for (const k of Object.keys(t)) if (!TOP_LEVEL.has(k)) this.err(k, 'unknown top-level section');
    if (t.AWSTemplateFormatVersion !== undefined && t.AWSTemplateFormatVersion !== '2010-09-09') this.err('AWSTemplateFormatVersion', 'must be the string "2010-09-09"');
    if (typeof t.Description !== 'string' || t.Description.length === 0) this.err('Description', 'missing');
    if (!isObject(t.Resources) || Object.keys(t.Resources).length === 0) this.err('Resources', 'no resource');
    const header = text.split('\n').slice(0, 40).filter((l) => l.startsWith('#')).length;
    if (header < 3) this.err('header', 'the template starts without a comment that documents it (3 lines at least)');
    text.split('\n').forEach((line, i) => {
      if (/(^|[^0-9])[0-9]{12}([^0-9]|$)/.test(line)) this.err(`line ${i + 1}`, 'an account id is written in the template');
      if (/\b(us|eu|ap|sa|ca|me|af|il|mx|cn)-(gov-)?(north|south|east|west|central|northeast|northwest|southeast|southwest)-[0-9]\b/.test(line)) this.err(`line ${i + 1}`, 'a region is written in the template');
    });

    for (const [name, p] of Object.entries(this.params)) {
      const at = `Parameters/${name}`;
      if (!isObject(p) || typeof p.Type !== 'string' || !PARAMETER_TYPES.test(p.Type)) { this.err(at, 'no valid Type'); continue; }
      if (typeof p.Description !== 'string') this.err(at, 'no Description');
      if (p.AllowedValues !== undefined && p.Default !== undefined && !p.AllowedValues.map(String).includes(String(p.Default))) this.err(at, `Default ${p.Default} is not allowed`);
    }
    for (const [name, m] of Object.entries(this.mappings)) {
      if (!/^[A-Za-z0-9]+$/.test(name) || !isObject(m)) this.err(`Mappings/${name}`, 'bad mapping');
    }
    for (const [name, c] of Object.entries(this.conditions)) this.value(c, `Conditions/${name}`);

    for (const [name, r] of Object.entries(this.resources)) {
      const at = `Resources/${name}`;
      if (!/^[A-Za-z0-9]+$/.test(name)) this.err(at, 'logical ids are alphanumeric');
      if (!isObject(r) || typeof r.Type !== 'string') { this.err(at, 'no Type'); continue; }
      for (const k of Object.keys(r)) if (!RESOURCE_KEYS.has(k)) this.err(`${at}/${k}`, 'unknown resource attribute');
      if (r.Condition !== undefined && !(r.Condition in this.conditions)) this.err(at, `no condition ${r.Condition}`);
      for (const d of [].concat(r.DependsOn || [])) if (!(d in this.resources)) this.err(at, `DependsOn ${d}, which is no resource`);
      for (const k of ['DeletionPolicy', 'UpdateReplacePolicy']) if (r[k] !== undefined && !POLICIES.has(r[k])) this.err(`${at}/${k}`, `bad policy ${r[k]}`);
      this.value(r.Properties || {}, `${at}/Properties`);
      if (r.Type.startsWith('Custom::') || r.Type === 'AWS::CloudFormation::CustomResource') continue;
      const spec = this.spec.resources.get(r.Type);
      if (!spec) { this.err(at, `no resource type ${r.Type} in the specification`); continue; }
      this.object(r.Properties || {}, { name: r.Type, properties: spec.properties }, `${at}/Properties`);
    }
    for (const [name, o] of Object.entries(isObject(t.Outputs) ? t.Outputs : {})) {
      const at = `Outputs/${name}`;
      if (!isObject(o) || o.Value === undefined) { this.err(at, 'no Value'); continue; }
      if (o.Condition !== undefined && !(o.Condition in this.conditions)) this.err(at, `no condition ${o.Condition}`);
      this.value(o.Value, `${at}/Value`);
      if (o.Export !== undefined) this.value(o.Export, `${at}/Export`);
    }
    for (const name of Object.keys(this.params)) {
      if (!this.usedParams.has(name) && !(stackName && name === 'StackNamePrefix')) this.err(`Parameters/${name}`, 'never used');
    }
  }
}

// The exports each template produces once deployed as PREFIX-<stack name>.
function exportsOf(template, stackName) {
  const out = [];
  for (const o of Object.values(isObject(template.Outputs) ? template.Outputs : {})) {
    const name = isObject(o) && isObject(o.Export) ? o.Export.Name : undefined;
    const text = typeof name === 'string' ? name : (isObject(name) && typeof name['Fn::Sub'] === 'string' ? name['Fn::Sub'] : null);
    if (text && stackName) out.push(text.replace(/\$\{AWS::StackName\}/g, `${PREFIX}-${stackName}`));
  }
  return out;
}

function main(argv) {
  const stacks = new Map(); // file -> stack names
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--stack') {
      const [name, file] = (argv[++i] || '').split('=');
      if (!name || !file) { console.error('--stack NAME=FILE'); return 2; }
      const key = path.resolve(file);
      if (!stacks.has(key)) stacks.set(key, []);
      stacks.get(key).push(name);
    } else files.push(argv[i]);
  }
  if (files.length === 0) { console.error('usage: cfn-check.js [--stack NAME=FILE]... FILE...'); return 2; }
  const spec = loadSpec();
  const parsed = files.map((file) => {
    const errors = [];
    const { text, template } = parseTemplate(file, errors);
    return { file, text, template: template || {}, errors };
  });
  const exportsKnown = new Set(INFRA_EXPORTS);
  for (const p of parsed) {
    for (const name of stacks.get(path.resolve(p.file)) || []) for (const e of exportsOf(p.template, name)) exportsKnown.add(e);
  }
  let failed = 0;
  for (const p of parsed) {
    const names = stacks.get(path.resolve(p.file)) || [];
    const c = new Checker(spec, p.file, p.template, exportsKnown);
    if (p.errors.length === 0) c.run(p.text, names[0]);
    const errors = p.errors.concat(c.errors);
    const types = Object.values(c.resources).filter(isObject).length;
    if (errors.length) {
      failed++;
      for (const e of errors) console.log(`${p.file}: ${e}`);
      console.log(`${p.file}: FAILED (${errors.length} errors)`);
    } else {
      console.log(`${p.file}: ok (${types} resources, ${Object.keys(c.params).length} parameters checked)`);
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
