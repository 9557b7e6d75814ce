"""Write the synthetic demo data (all three tasks) under data/demo."""
import argparse

from medfm.datasets.demo import DEFAULT_SIZES, TASKS, make_demo


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--out-dir', '--out', dest='out', default='data/demo',
                   help='OUT/<task> (default data/demo)')
    p.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS),
                   help='tasks to write (default: all)')
    p.add_argument('--train', type=int, default=DEFAULT_SIZES['train'],
                   help='images in train_20.txt (default: %(default)s)')
    p.add_argument('--val', type=int, default=DEFAULT_SIZES['val'],
                   help='images in val_20.txt (default: %(default)s)')
    p.add_argument('--test', type=int, default=DEFAULT_SIZES['test'],
                   help='images in test_WithLabel.txt and test_WithoutLabel.txt '
                   '(default: %(default)s)')
    p.add_argument('--seed', type=int, default=0, help='(default: %(default)s)')
    args = p.parse_args(argv)
    make_demo(args.out, args.tasks,
              dict(train=args.train, val=args.val, test=args.test), args.seed)
    print(f'demo data written to {args.out}/{{{",".join(args.tasks)}}}')


if __name__ == '__main__':
    main()
