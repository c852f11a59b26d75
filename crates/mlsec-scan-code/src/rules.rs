//! The rules of the code scanner. Ids are stable: never renumber, never reuse.

use mlsec_diagnostics::{Rule, RuleExamples, rule};

const ML06: &[&str] = &["ML06"];
const ML05: &[&str] = &["ML05"];
/// Prompt injection is input manipulation (ML01); acting on model output is output integrity (ML09).
const ML01: &[&str] = &["ML01"];
const ML01_ML09: &[&str] = &["ML01", "ML09"];

rule!(TORCH_LOAD_UNSAFE, "PY001", "torch-load-unsafe", High, &["CWE-502"], ML06,
    summary: "torch.load without weights_only=True unpickles arbitrary objects",
    what: "Flags calls to torch.load (however it is imported or aliased) whose weights_only argument is False, or absent (the default became True only in torch 2.6).",
    why: "torch.load is pickle.load with extra steps: a checkpoint from an untrusted source runs code when loaded unless weights_only=True restricts it to tensors and primitive types.",
    example: "`torch.load(path)` or `torch.load(path, weights_only=False)`",
    fix: "Pass weights_only=True (and torch.serialization.add_safe_globals for your own classes), or store weights as safetensors.",
    refs: &["https://pytorch.org/docs/stable/generated/torch.load.html", "https://github.com/advisories/GHSA-53q9-r3pm-6pq6"]);

rule!(PICKLE_LOAD, "PY002", "pickle-deserialization", High, &["CWE-502"], ML06,
    summary: "Deserialization with pickle, dill, cloudpickle, joblib or pandas.read_pickle",
    what: "Flags pickle.load/loads/Unpickler, dill, cloudpickle, joblib.load, pandas.read_pickle and shelve.open.",
    why: "Each of these runs code embedded in the data. A model or dataset file from outside your trust boundary becomes remote code execution.",
    example: "`joblib.load('model.joblib')`",
    fix: "Load only files you produced, verify their signature first (`mlsec verify`), or switch to safetensors / skops / ONNX.",
    refs: &["https://docs.python.org/3/library/pickle.html"]);

rule!(NUMPY_ALLOW_PICKLE, "PY003", "numpy-allow-pickle", High, &["CWE-502"], ML06,
    summary: "numpy.load with allow_pickle=True",
    what: "Flags numpy.load calls that pass allow_pickle=True.",
    why: "Object arrays in .npy/.npz files are pickles; allow_pickle=True lets a crafted array run code.",
    example: "`np.load('x.npz', allow_pickle=True)`",
    fix: "Keep allow_pickle=False (the default) and store plain numeric arrays.",
    refs: &["https://numpy.org/doc/stable/reference/generated/numpy.load.html"]);

rule!(YAML_UNSAFE_LOAD, "PY004", "yaml-unsafe-load", High, &["CWE-502"], ML06,
    summary: "yaml.load without a safe loader",
    what: "Flags yaml.load/load_all without Loader, or with Loader, UnsafeLoader or FullLoader, and yaml.unsafe_load.",
    why: "PyYAML's full and unsafe loaders construct arbitrary Python objects from tags such as !!python/object/apply.",
    example: "`yaml.load(open('config.yaml'))`",
    fix: "Use yaml.safe_load or Loader=yaml.SafeLoader.",
    refs: &["https://pyyaml.org/wiki/PyYAMLDocumentation"]);

rule!(KERAS_UNSAFE_MODE, "PY005", "keras-unsafe-mode", High, &["CWE-502", "CWE-94"], ML06,
    summary: "Keras load_model with safe_mode=False",
    what: "Flags keras / tf.keras load_model calls that pass safe_mode=False.",
    why: "safe_mode=False lets a .keras file deserialize Lambda layers, which carry marshalled Python bytecode.",
    example: "`keras.models.load_model('m.keras', safe_mode=False)`",
    fix: "Keep safe_mode=True and replace Lambda layers with registered custom layers.",
    refs: &["https://keras.io/api/models/model_saving_apis/model_saving_and_loading/"]);

rule!(HF_TRUST_REMOTE_CODE, "PY010", "trust-remote-code-enabled", High, &["CWE-94", "CWE-829"], ML06,
    summary: "trust_remote_code=True runs Python from the model repository",
    what: "Flags any call passing trust_remote_code=True (transformers, diffusers, sentence-transformers, datasets).",
    why: "The repository's modeling code is downloaded and imported: whoever can push to that repository runs code in your process.",
    example: "`AutoModel.from_pretrained('org/model', trust_remote_code=True)`",
    fix: "Use a model supported natively, or vendor and review the code and pin the revision to a commit.",
    refs: &["https://huggingface.co/docs/transformers/en/models#custom-models"]);

rule!(HF_UNPINNED_REVISION, "PY011", "hf-unpinned-revision", Medium, &["CWE-494", "CWE-829"], ML06,
    summary: "Hub download without a revision pinned to a commit",
    what: "Flags from_pretrained, hf_hub_download, snapshot_download and pipeline(model=...) on a Hub repository id without revision= set to a 40-hex commit.",
    why: "A branch or tag moves: the next push to the repository (or a compromised account) silently changes what you load.",
    example: "`AutoModel.from_pretrained('org/model')` or `revision='main'`",
    fix: "Pass revision='<commit sha>' and update it deliberately; verify signatures where the publisher provides them.",
    refs: &["https://huggingface.co/docs/huggingface_hub/guides/download"]);

rule!(EVAL_MODEL_OUTPUT, "PY020", "eval-model-output", Critical, &["CWE-94", "CWE-95"], ML01_ML09,
    summary: "eval/exec of text produced by a model",
    what: "Flags eval, exec, compile, os.system and subprocess shells whose argument is (or is derived from, through wrappers such as .strip() or extract(...)) the result of a model or LLM call: generate, invoke, predict, chat.completions.create and friends. At high severity: pandas eval/query and database query/execute calls on model output, and eval/exec of any non-constant value in a module that calls LLMs.",
    why: "Model output is attacker-influenced through prompt injection; executing it hands the attacker a Python shell.",
    example: "`exec(llm.invoke(prompt).content)`",
    fix: "Never execute model output; parse it with a strict schema, or run generated code only in an isolated sandbox.",
    refs: &["https://genai.owasp.org/llmrisk/llm05-improper-output-handling/"]);

rule!(AGENT_CODE_EXECUTION, "PY030", "agent-code-execution-tool", High, &["CWE-94", "CWE-78"], ML01,
    summary: "An LLM agent can execute Python or shell commands",
    what: "Flags LangChain PythonREPLTool / PythonAstREPLTool / ShellTool / BashProcess, load_tools with python_repl or terminal, allow_dangerous_code / allow_dangerous_requests / allow_dangerous_deserialization=True, and AutoGen code execution without Docker.",
    why: "Prompt injection (from a web page, a document, a tool result) turns into code execution on the host.",
    example: "`load_tools(['python_repl'])`",
    fix: "Remove the tool, or run it in a locked-down sandbox (Docker without network, a separate VM) with human approval.",
    refs: &["https://python.langchain.com/docs/security/"]);

rule!(SYSTEM_PROMPT_INJECTION, "PY040", "system-prompt-from-input", Medium, &["CWE-77"], ML01,
    summary: "A system prompt is built from non-constant input",
    what: "Flags system-role messages ({'role': 'system', 'content': ...}, SystemMessage, ('system', ...) templates, instructions=) built by an f-string, `+`, `%`, .format or .join from a value that may carry someone's text (constants, dates, times, numbers and template parts such as prefix or format_instructions do not count). At low severity, one prompt string that joins instruction text and user input (a variable named like question, query, user_input, email) sent to a model or assigned to a *prompt* variable.",
    why: "Whatever flows into the system prompt carries the model's highest trust: user or document text there is prompt injection by construction.",
    example: "`{'role': 'system', 'content': f'You are {user_bio}'}`",
    fix: "Keep the system prompt constant; pass user data in user-role messages, delimited and treated as data.",
    refs: &["https://genai.owasp.org/llmrisk/llm01-prompt-injection/"]);

rule!(SERVER_EXPOSED, "PY050", "ml-server-exposed", Medium, &["CWE-306", "CWE-1327"], ML05,
    summary: "An ML server or dashboard listens on all interfaces or a public share link",
    what: "Flags Gradio launch(share=True) or launch(server_name='0.0.0.0') without auth, Ray dashboards on all interfaces, Jupyter ip='*' or '0.0.0.0', and mlflow or jupyter started with --host/--ip 0.0.0.0. Ordinary web apps bound to 0.0.0.0 (Flask, uvicorn) are left alone.",
    why: "These servers have no authentication by default; the Ray dashboard and Jupyter run arbitrary code, MLflow serves and accepts artifacts.",
    example: "`demo.launch(share=True)` or `ray.init(dashboard_host='0.0.0.0')`",
    fix: "Bind to 127.0.0.1 and put an authenticating proxy in front; never expose Ray or Jupyter without auth.",
    refs: &["https://docs.ray.io/en/latest/ray-security/index.html"]);

rule!(TLS_VERIFY_DISABLED, "PY060", "tls-verification-disabled", Medium, &["CWE-295"], ML06,
    summary: "TLS certificate verification is disabled",
    what: "Flags verify=False on HTTP calls and clients, ssl._create_unverified_context, and environment settings that disable verification (CURL_CA_BUNDLE='', MLFLOW_TRACKING_INSECURE_TLS=true, PYTHONHTTPSVERIFY=0).",
    why: "Without verification anyone on the path can swap the model, dataset or tracking data you download or upload.",
    example: "`requests.get(url, verify=False)`",
    fix: "Keep verification on; point REQUESTS_CA_BUNDLE or verify= at your internal CA bundle instead.",
    refs: &["https://requests.readthedocs.io/en/latest/user/advanced/#ssl-cert-verification"]);

rule!(CODE_UNPARSABLE, "PY900", "python-unparsable", Low, &["CWE-20"], ML06,
    summary: "Python source or notebook that could not be parsed completely",
    what: "Reports syntax errors and damaged notebooks. Everything that did parse is still analysed.",
    why: "A file that cannot be parsed cannot be declared clean.",
    example: "`def f(:` or a .ipynb that is not JSON",
    fix: "Fix the syntax error, or exclude the file if it is not Python.",
    refs: &[]);

rule!(CODE_TOO_DEEP, "PY901", "python-too-deep", Medium, &["CWE-1333", "CWE-20"], ML06,
    summary: "A statement nested too deeply to analyse",
    what: "Reports each statement with brackets nested deeper than 200 levels or more than 10,000 operators. That statement is not analysed; the rest of the file is.",
    why: "Such nesting is valid Python but no person writes it; it hides whatever sits inside from analysis, and generated or obfuscated code is where it appears.",
    example: "`x = ((((...201 levels...))))`",
    fix: "Split the expression into named parts. If the file is generated, scan the generator's input instead.",
    refs: &[]);

/// Every rule of this scanner.
pub static RULES: &[&Rule] = &[
    &TORCH_LOAD_UNSAFE,
    &PICKLE_LOAD,
    &NUMPY_ALLOW_PICKLE,
    &YAML_UNSAFE_LOAD,
    &KERAS_UNSAFE_MODE,
    &HF_TRUST_REMOTE_CODE,
    &HF_UNPINNED_REVISION,
    &EVAL_MODEL_OUTPUT,
    &AGENT_CODE_EXECUTION,
    &SYSTEM_PROMPT_INJECTION,
    &SERVER_EXPOSED,
    &TLS_VERIFY_DISABLED,
    &CODE_UNPARSABLE,
    &CODE_TOO_DEEP,
];

/// Positive (must fire) and negative (must stay quiet) examples for each rule, checked by one test.
pub static EXAMPLES: &[RuleExamples] = &[
    (
        &TORCH_LOAD_UNSAFE,
        &[
            "import torch\ntorch.serialization.load('m.pt')\n",
            "import torch\ntorch.hub.load_state_dict_from_url(url)\n",
            "import torch\ntorch.load('m.pt')\n",
            "import torch as T\nT.load('m.pt', weights_only=False)\n",
            "from torch import load as l\nl('m.pt')\n",
            "import torch\nloader = torch.load\nloader('m.pt')\n",
            "import torch\nWO = False\ntorch.load('m.pt', weights_only=WO)\n",
            "import torch\nkw = {'weights_only': False}\ntorch.load('m.pt', **kw)\n",
            "import torch\nkw = dict(weights_only=False, map_location='cpu')\ntorch.load('m.pt', **kw)\n",
        ],
        &[
            "import torch\ntorch.hub.load_state_dict_from_url(url, weights_only=True)\n",
            "import torch\ntorch.load('m.pt', weights_only=True)\n",
            "import torch\nkw = {'weights_only': True}\ntorch.load('m.pt', **kw)\n",
            "def load(p):\n    return p\nload('m.pt')\n",
            "import safetensors.torch\nsafetensors.torch.load_file('m.safetensors')\n",
        ],
    ),
    (
        &PICKLE_LOAD,
        &[
            "import importlib\npk = importlib.import_module('pickle')\npk.loads(b)\n",
            "json = __import__('pickle')\njson.loads(b)\n",
            "import pickle as json\njson.loads(b)\n",
            "from torch.package import PackageImporter\nPackageImporter('m.pt')\n",
            "import pickle\npickle.load(open('m.pkl', 'rb'))\n",
            "import joblib\nm = joblib.load('m.joblib')\n",
            "import pandas as pd\npd.read_pickle('df.pkl')\n",
            "from dill import loads\nloads(blob)\n",
            "import cloudpickle\ncloudpickle.loads(b)\n",
            "import pickle\npickle.loads(zlib.decompress(pickle.dumps(x)))\n",
        ],
        &[
            "import json\njson.loads(b)\n",
            "import pickle\npickle.dumps(obj)\n",
            "import pickle\ncopy = pickle.loads(pickle.dumps(model))\n",
            "import cloudpickle\nf2 = cloudpickle.loads(cloudpickle.dumps(f))\n",
            "import joblib\njoblib.dump(m, 'm.joblib')\n",
            "import pandas as pd\npd.read_csv('x.csv')\n",
        ],
    ),
    (
        &NUMPY_ALLOW_PICKLE,
        &[
            "import numpy as np\nnp.load('x.npy', allow_pickle=True)\n",
            "from numpy import load\nload('x.npz', allow_pickle=True)\n",
        ],
        &[
            "import numpy as np\nnp.load('x.npy')\n",
            "import numpy as np\nnp.load('x.npy', allow_pickle=False)\n",
        ],
    ),
    (
        &YAML_UNSAFE_LOAD,
        &[
            "import yaml\nyaml.load(open('c.yaml'))\n",
            "import yaml\nyaml.load(s, Loader=yaml.Loader)\n",
            "import yaml\nyaml.unsafe_load(s)\n",
            "import yaml\nfrom yaml import UnsafeLoader\nyaml.load_all(s, UnsafeLoader)\n",
        ],
        &[
            "import yaml\nyaml.safe_load(s)\n",
            "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)\n",
            "from yaml import CSafeLoader\nimport yaml\nyaml.load(s, CSafeLoader)\n",
        ],
    ),
    (
        &KERAS_UNSAFE_MODE,
        &[
            "import keras\nkeras.config.enable_unsafe_deserialization()\n",
            "import keras\nkeras.models.load_model('m.keras', safe_mode=False)\n",
            "import tensorflow as tf\ntf.keras.models.load_model('m.keras', safe_mode=False)\n",
        ],
        &["import keras\nkeras.models.load_model('m.keras')\n"],
    ),
    (
        &HF_TRUST_REMOTE_CODE,
        &[
            "import torch\ntorch.hub.load('pytorch/vision', 'resnet50')\n",
            "from transformers import AutoModel\nAutoModel.from_pretrained('org/m', revision='0123456789abcdef0123456789abcdef01234567', trust_remote_code=True)\n",
            "from transformers import pipeline\nopts = {'trust_remote_code': True}\npipeline('text-generation', model='./local', **opts)\n",
        ],
        &[
            "import torch\ntorch.hub.load('./hub', 'resnet50', source='local')\n",
            "from transformers import AutoModel\nAutoModel.from_pretrained('./local', trust_remote_code=False)\n",
        ],
    ),
    (
        &HF_UNPINNED_REVISION,
        &[
            "from datasets import load_dataset\nload_dataset('org/data')\n",
            "from transformers import AutoModel\nAutoModel.from_pretrained('bert-base-uncased')\n",
            "from transformers import AutoTokenizer\nAutoTokenizer.from_pretrained('org/model', revision='main')\n",
            "from huggingface_hub import hf_hub_download\nhf_hub_download(repo_id='org/m', filename='w.safetensors')\n",
            "from huggingface_hub import snapshot_download\nsnapshot_download('org/m')\n",
            "from transformers import pipeline\npipeline('ner', model='dslim/bert-base-NER')\n",
            "MODEL = 'org/m'\nfrom diffusers import DiffusionPipeline\nDiffusionPipeline.from_pretrained(MODEL)\n",
        ],
        &[
            "from datasets import load_dataset\nload_dataset('csv', data_files='x.csv')\n",
            "from datasets import load_dataset\nload_dataset('org/data', revision='0123456789abcdef0123456789abcdef01234567')\n",
            "from transformers import AutoModel\nAutoModel.from_pretrained('org/m', revision='0123456789abcdef0123456789abcdef01234567')\n",
            "from transformers import AutoModel\nAutoModel.from_pretrained('./checkpoints/run1')\n",
            "from transformers import AutoModel\nAutoModel.from_pretrained(path)\n",
            "from transformers import pipeline\npipeline('ner')\n",
        ],
    ),
    (
        &EVAL_MODEL_OUTPUT,
        &[
            "import sqlite3\nsql = chain.invoke(q)\nsqlite3.connect('db').execute(sql)\n",
            "import os\nout = llm.invoke(p).content\nos.system(out)\n",
            "code = llm.invoke(p).content\nexec(compile(code, '<llm>', 'exec'))\n",
            "r = chain.invoke(q)\neval(r.strip())\n",
            "import pandas as pd\nexpr = llm.invoke(p).content\ndf.query(expr)\n",
            "import pandas as pd\npd.eval(llm.invoke(p).content)\n",
            "def extract(t):\n    return t\nblocks = llm.invoke(p)\nfor b in blocks:\n    exec(extract(b))\n",
            "from langchain_core.language_models import BaseLLM\ndef run(entity):\n    exec(entity.code, globals(), {})\n",
            "out = llm.invoke(prompt)\nexec(out.content)\n",
            "import openai\nr = client.chat.completions.create(model='x', messages=m)\neval(r.choices[0].message.content)\n",
            "text = model.generate(ids)\ncode = text\nexec(code)\n",
            "eval(chain.run(q))\n",
        ],
        &[
            "import pandas as pd\ndf.query('a > 1')\n",
            "import openai\nexec('x = 1')\n",
            "out = llm.invoke(p)\nprint(len(out))\n",
            "import subprocess\nout = llm.invoke(p)\nsubprocess.run(['echo', 'done'])\n",
            "eval('1 + 1')\n",
            "exec(compile_source)\n",
            "x = llm.invoke(p)\nprint(x)\n",
        ],
    ),
    (
        &AGENT_CODE_EXECUTION,
        &[
            "from langchain_core.tools import tool\nimport subprocess\n@tool\ndef shell(cmd: str) -> str:\n    return subprocess.run(cmd, shell=True, capture_output=True).stdout\n",
            "import os\ndef run(command):\n    os.system(command)\nagent = Agent(tools=[run])\n",
            "from mcp.server.fastmcp import FastMCP\nmcp = FastMCP('x')\n@mcp.tool()\ndef run(code: str):\n    exec(code)\n",
            "import subprocess\nfrom langchain_core.tools import BaseTool\nclass Sh(BaseTool):\n    def _run(self, q):\n        return subprocess.check_output(['bash', '-c', q])\n",
            "import os\nfrom langchain_core.tools import Tool\ndef sh(c):\n    return os.popen('sh -c ' + c).read()\nTool(name='sh', func=sh, description='run')\n",
            "from langchain_experimental.tools import PythonREPLTool\ntools = [PythonREPLTool()]\n",
            "from langchain.agents import load_tools\nload_tools(['python_repl', 'llm-math'], llm=llm)\n",
            "from langchain_community.tools import ShellTool\nShellTool()\n",
            "create_pandas_dataframe_agent(llm, df, allow_dangerous_code=True)\n",
            "FAISS.load_local('idx', emb, allow_dangerous_deserialization=True)\n",
            "import autogen\nautogen.UserProxyAgent('u', code_execution_config={'work_dir': 'w', 'use_docker': False})\n",
        ],
        &[
            "import subprocess\n@tool\ndef status() -> str:\n    return subprocess.run(['git', 'status'], capture_output=True).stdout\n",
            "import os\ndef run(command):\n    os.system(command)\n",
            "import subprocess\n@tool\ndef ls(path: str):\n    return subprocess.run(['ls', path])\n",
            "from langchain.agents import load_tools\nload_tools(['llm-math'], llm=llm)\n",
            "import autogen\nautogen.UserProxyAgent('u', code_execution_config={'use_docker': True})\n",
            "import autogen\nautogen.UserProxyAgent('u', code_execution_config=False)\n",
        ],
    ),
    (
        &SYSTEM_PROMPT_INJECTION,
        &[
            "question = input()\nprompt = 'Answer the question below using only the context.\\n' + question\n",
            "r = llm.invoke(f'Summarise this customer email politely: {email_body}')\n",
            "msgs = [{'role': 'system', 'content': f'You are {persona}'}]\n",
            "msgs = [{'role': 'system', 'content': 'Rules: ' + user_text}]\n",
            "from langchain_core.messages import SystemMessage\nSystemMessage(content='Be {}'.format(x))\n",
            "client.responses.create(model='m', instructions=f'{doc}', input=q)\n",
            "ChatPromptTemplate.from_messages([('system', f'ctx {ctx}'), ('human', '{q}')])\n",
        ],
        &[
            "import time\nmsgs = [{'role': 'system', 'content': f'The current time and date is {time.strftime(\"%c\")}'}]\n",
            "msgs = [{'role': 'system', 'content': f'Today is {datetime.now():%Y-%m-%d}. Be brief.'}]\n",
            "from langchain_core.messages import SystemMessage\ndef agent(prefix='A', suffix='B'):\n    return SystemMessage(content=prefix + suffix)\n",
            "prompt = f'{question}'\n",
            "msgs = [{'role': 'user', 'content': f'Answer this question: {question}'}]\n",
            "msgs = [{'role': 'system', 'content': 'You are helpful.'}, {'role': 'user', 'content': q}]\n",
            "SYSTEM = 'Be brief.'\nmsgs = [{'role': 'system', 'content': SYSTEM}]\n",
            "ChatPromptTemplate.from_messages([('system', 'You answer about {topic}'), ('human', '{q}')])\n",
        ],
    ),
    (
        &SERVER_EXPOSED,
        &[
            "from mlflow.server import app\napp.run(host='0.0.0.0')\n",
            "from ray import serve\nserve.start(http_options={'host': '0.0.0.0'})\n",
            "from ray.serve.config import HTTPOptions\nHTTPOptions(host='0.0.0.0')\n",
            "import gradio as gr\ndemo.launch(share=True)\n",
            "demo.launch(server_name='0.0.0.0')\n",
            "import ray\nray.init(dashboard_host='0.0.0.0')\n",
            "c.ServerApp.ip = '0.0.0.0'\n",
            "import subprocess\nsubprocess.run(['mlflow', 'server', '--host', '0.0.0.0'])\n",
        ],
        &[
            "from ray import serve\nserve.start(http_options={'host': '127.0.0.1'})\n",
            "demo.launch(share=True, auth=('u', pw))\n",
            "demo.launch()\n",
            "app.run(host='0.0.0.0', port=8080)\n",
            "import uvicorn\nuvicorn.run(app, host='0.0.0.0')\n",
        ],
    ),
    (
        &TLS_VERIFY_DISABLED,
        &[
            "import requests\ns = requests.Session()\ns.verify = False\n",
            "from elasticsearch import Elasticsearch\nElasticsearch(hosts, verify_certs=False)\n",
            "loader = Loader(url, ssl_verify=False)\n",
            "import ssl\nctx = ssl.create_default_context()\nctx.check_hostname = False\n",
            "import ssl\nctx.verify_mode = ssl.CERT_NONE\n",
            "import ssl\nws.run_forever(sslopt={'cert_reqs': ssl.CERT_NONE})\n",
            "import urllib3\nurllib3.PoolManager(cert_reqs='CERT_NONE')\n",
            "import requests\nrequests.get(url, verify=False)\n",
            "import httpx\nhttpx.Client(verify=False)\n",
            "import os\nos.environ['CURL_CA_BUNDLE'] = ''\n",
            "import os\nos.environ['MLFLOW_TRACKING_INSECURE_TLS'] = 'true'\n",
            "import ssl\nctx = ssl._create_unverified_context()\n",
        ],
        &[
            "import ssl\nif ctx.verify_mode == ssl.CERT_NONE:\n    warn()\n",
            "s.verify = '/etc/ca.pem'\n",
            "import requests\nrequests.get(url)\n",
            "import requests\nrequests.get(url, verify='/etc/ca.pem')\n",
            "import os\nos.environ['CURL_CA_BUNDLE'] = '/etc/ca.pem'\n",
        ],
    ),
    (
        &CODE_TOO_DEEP,
        &[
            "x = (((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))\n",
        ],
        &[
            "x = ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))\n",
        ],
    ),
    (
        &CODE_UNPARSABLE,
        &["def f(:\n    pass\n"],
        &["def f():\n    pass\n"],
    ),
];
