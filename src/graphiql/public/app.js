// GraphiQL with file uploads. Plain browser JS, no build step: React, ReactDOM and GraphiQL are
// the UMD globals loaded before this script. No eval, no inline script: it runs under a strict CSP.
/* global React, ReactDOM, GraphiQL */
(() => {
  'use strict'

  const { createElement: h, useEffect, useState } = React
  const { parse } = GraphiQL.GraphQL // graphql-js, bundled in GraphiQL's UMD build
  const graphqlUrl = new URL(document.body.dataset.graphqlPath || '/graphql', location.href).href

  const DEFAULT_QUERY = `# Pick a photo for $image above, then run.
# Optional: {"instructions": "…", "language": "de"}
# Backend status:
#   query { vision { backend deployment ready } }
mutation Identify($image: Upload!, $instructions: String, $language: String) {
  identifyVehicle(image: $image, instructions: $instructions, language: $language) {
    id
    answer
    language
    backend
    model
    image { sha256 mimeType bytes width height }
    usage { promptTokens completionTokens totalTokens }
    durationMs
    createdAt
  }
}
`

  /** Picked files by variable name: File[] (one entry unless the variable is a list). */
  const picked = new Map()

  /** `Upload`, `Upload!`, `[Upload!]`… → { list, required }; any other type → null. */
  function uploadType (type) {
    const required = type.kind === 'NonNullType'
    if (required) type = type.type
    const list = type.kind === 'ListType'
    if (list) type = type.type.kind === 'NonNullType' ? type.type.type : type.type
    return type.kind === 'NamedType' && type.name.value === 'Upload' ? { list, required } : null
  }

  /**
   * The Upload variables of the operation named operationName, or of every operation when it is
   * not given (for the bar). null when the text does not parse, e.g. while it is being typed.
   */
  function uploadVariables (query, operationName) {
    let doc
    try {
      doc = parse(query)
    } catch {
      return null
    }
    const vars = new Map()
    for (const d of doc.definitions) {
      if (d.kind !== 'OperationDefinition' || (operationName && d.name?.value !== operationName)) continue
      for (const def of d.variableDefinitions ?? []) {
        const t = uploadType(def.type)
        if (t) vars.set(def.variable.name.value, { name: def.variable.name.value, ...t })
      }
    }
    return [...vars.values()]
  }

  /**
   * GraphiQL's fetcher. With files picked for the operation's Upload variables it sends a GraphQL
   * multipart request (https://github.com/jaydenseric/graphql-multipart-request-spec), else JSON.
   * Headers typed in GraphiQL's headers editor arrive in opts.headers and go on both paths.
   */
  async function fetcher (params, opts) {
    const headers = new Headers(opts?.headers ?? {})
    headers.set('accept', 'application/graphql-response+json, application/json')
    const uploads = uploadVariables(params.query, params.operationName) ?? []
    const missing = uploads.filter((u) => u.required && !picked.has(u.name))
    if (missing.length) {
      const names = missing.map((u) => `$${u.name}`).join(', ')
      return { errors: [{ message: `Pick a file for ${names} in the bar above the editor.` }] }
    }

    let body
    const withFiles = uploads.filter((u) => picked.has(u.name))
    if (withFiles.length) {
      const variables = { ...params.variables }
      const files = [] // [object path, File]
      for (const u of withFiles) {
        const chosen = picked.get(u.name)
        if (u.list) {
          variables[u.name] = chosen.map(() => null)
          chosen.forEach((f, i) => files.push([`variables.${u.name}.${i}`, f]))
        } else {
          variables[u.name] = null
          files.push([`variables.${u.name}`, chosen[0]])
        }
      }
      body = new FormData()
      body.append('operations', JSON.stringify({ ...params, variables }))
      body.append('map', JSON.stringify(Object.fromEntries(files.map(([path], i) => [i, [path]]))))
      files.forEach(([, f], i) => body.append(String(i), f, f.name))
      headers.delete('content-type') // the browser sets multipart/form-data with its boundary
      headers.set('graphql-require-preflight', '1') // the server's CSRF prevention asks for it
    } else {
      headers.set('content-type', 'application/json')
      body = JSON.stringify(params)
    }

    const res = await fetch(graphqlUrl, { method: 'POST', headers, body, credentials: 'same-origin' })
    const text = await res.text()
    try {
      return JSON.parse(text)
    } catch {
      return { errors: [{ message: `HTTP ${res.status} ${res.statusText}: ${text.slice(0, 500)}` }] }
    }
  }

  const sameVars = (a, b) =>
    a.length === b.length && a.every((v, i) => v.name === b[i].name && v.list === b[i].list)

  /**
   * The file pickers. Rendered inside GraphiQL (as a toolbar add-on) so that it can follow the
   * query editor, and portalled into #uploads, the bar above the editor.
   */
  function UploadBar () {
    const { queryEditor } = GraphiQL.React.useEditorContext({ nonNull: true })
    const [vars, setVars] = useState([])

    useEffect(() => {
      if (!queryEditor) return
      const update = () => {
        const next = uploadVariables(queryEditor.getValue())
        if (!next) return // keep the pickers while the text does not parse
        for (const name of picked.keys()) if (!next.some((v) => v.name === name)) picked.delete(name)
        setVars((prev) => (sameVars(prev, next) ? prev : next))
      }
      update()
      queryEditor.on('change', update)
      return () => queryEditor.off('change', update)
    }, [queryEditor])

    const pickers = vars.map((v) =>
      h('label', { key: v.name },
        h('code', null, `$${v.name}`),
        h('input', {
          type: 'file',
          name: v.name,
          'data-variable': v.name,
          multiple: v.list,
          onChange: (e) => {
            // The native input shows the choice; the fetcher reads `picked`.
            const files = [...e.target.files]
            if (files.length) picked.set(v.name, files)
            else picked.delete(v.name)
          }
        })
      )
    )
    const content = vars.length
      ? [h('span', { key: 'title', className: 'title' }, 'Files'), ...pickers]
      : h('span', { className: 'hint' }, 'To send a file, declare a variable of type Upload, e.g. ($image: Upload!).')
    return ReactDOM.createPortal(content, document.getElementById('uploads'))
  }

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    h(GraphiQL, {
      fetcher,
      defaultQuery: DEFAULT_QUERY,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false, // headers may hold tokens: keep them out of localStorage
      toolbar: { additionalComponent: UploadBar }
    })
  )
})()
