import t from 'tap'
import { testApp, login } from '../helpers/app.ts'

void t.test('when a user shortens a URL, then its code redirects to it', async (t) => {
  const { app } = await testApp(t)
  const { auth } = await login(app)
  const res = await app.inject({ method: 'POST', url: '/api/v1/links', headers: auth, payload: { url: 'https://example.com/a' } })
  t.equal(res.statusCode, 201, res.body)
  const link = res.json() as { code: string }
  const r = await app.inject({ method: 'GET', url: `/${link.code}` })
  t.equal(r.statusCode, 302, r.body)
  t.equal(r.headers.location, 'https://example.com/a')
})
