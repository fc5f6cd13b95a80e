from devtools.seed import seed_backup


def test_smoke(stores, run_dag):
    b = seed_backup(stores)
    out = run_dag()
    print(out)
    assert out.state == "success"
